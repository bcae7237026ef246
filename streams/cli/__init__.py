"""The `gatewatch` command: argument parsing, the local stack (`gatewatch up`), generated README parts."""
