"""The worker: Faust agents that judge events, keep windows and the register, and write outputs."""
