"""Synthetic NPD access traffic: mostly compliant events, plus labelled violations of every category.

Pure and deterministic for a seed: the only I/O is reading the agreements register. Traffic is drawn
from the sample register (rules/samples/agreements.yaml) and the catalogue codes (docs/domain.md). Each
violation scenario changes ONE thing in a compliant event; `SimulatedEvent.expected_categories` is the
set of categories that change must raise, and nothing else. One change may break several rules at
once (a prohibited field in a Home Office match is also outside the agreement and more than the match
may return), and every rule that holds is on the decision, so a scenario may expect several.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from schemas import AccessEvent, Agreement

__all__ = ["COMPLIANT", "DEFAULT_START", "SAMPLE_REGISTER", "SimulatedEvent", "Simulator", "load_agreements"]

LONDON = ZoneInfo("Europe/London")
#: The scenario name of compliant traffic.
COMPLIANT = "compliant"
#: Default start of the simulated clock: a Monday morning, one week before British Summer Time ends,
#: so a few hundred events carry both +01:00 and +00:00 offsets. Fixed, so a seed replays exactly.
DEFAULT_START = dt.datetime(2026, 10, 19, 8, 0, tzinfo=LONDON)
# Mean gap between events in working time: about 60 events per working day.
_MEAN_GAP_SECONDS = 600.0
# Working hours are 08:00-18:00 Monday to Friday (Europe/London); stay clear of the edges.
_OPEN = dt.time(8, 5)
_CLOSE = dt.time(17, 50)
_GB_IPS = ("192.0.2.", "198.51.100.")  # documentation ranges (RFC 5737): never a real address
_ABROAD_IP = "203.0.113."
# Fields some sample agreements list although the pack flags them whatever the agreement says;
# compliant traffic never discloses them, violation scenarios do.
_FLAGGED_EVEN_IF_ALLOWED = frozenset({"english_proficiency", "candidate_number"})

# Agreement ids of the sample register (rules/samples/agreements.yaml) that traffic is drawn from.
SRS_NORTHMOOR = "DR190304.01"
SRS_KINGSBRIDGE = "DR200115.02"
DIRECT_EASTFOLD = "DR170620.03"
CHARITY = "DR210412.01"
COMMERCIAL = "DR220301.04"
DWP = "DR230116.01"
HOME_OFFICE = "DR151007.01"
POLICE = "DR190820.05"
LOCAL_AUTHORITY = "DR180301.07"
HMRC = "DR200903.02"
LRS_PROVIDER = "DR180412.01"
SUSPENDED = "DR180905.02"
EXPIRED = "DR160122.01"
GOVERNANCE_GAP = "DR230517.03"
#: The packaged sample register. `rules` and `streams` are sibling packages both in the source tree and
#: when installed, so this holds even where `rules` resolves as a namespace package (no __file__).
SAMPLE_REGISTER = Path(__file__).resolve().parents[2] / "rules" / "samples" / "agreements.yaml"
#: An agreement id that is in no register.
UNKNOWN_AGREEMENT = "DR230999.09"


def load_agreements(path: Path | None = None) -> list[Agreement]:
    """Read and validate an agreements register (YAML or JSON list); default: the packaged sample."""
    from streams.offline.register_file import load_agreements_file

    return load_agreements_file(path if path is not None else SAMPLE_REGISTER)


@dataclass(frozen=True)
class SimulatedEvent:
    """One synthetic event, the scenario that produced it and the set of categories it must raise."""

    event: AccessEvent
    scenario: str
    expected_categories: frozenset[str]  # every category the event must raise, and no other; empty: compliant


@dataclass(frozen=True)
class _Draft:
    """An event as a dict before validation, with the compliant template it was derived from."""

    base: dict[str, Any]
    event: dict[str, Any]
    expected: frozenset[str]


def _fixed_offset(t: dt.datetime) -> dt.datetime:
    """London wall time with a fixed UTC offset (+00:00 or +01:00), as a producer would stamp it."""
    local = t.astimezone(LONDON)
    offset = local.utcoffset()
    assert offset is not None  # an aware datetime always has an offset
    return local.replace(tzinfo=dt.timezone(offset))


class _Clock:
    """Event time: advances by random gaps inside working hours, or jumps to a night on request."""

    def __init__(self, start: dt.datetime, rng: random.Random) -> None:
        self._now = start
        self._rng = rng

    def _opening(self, day: dt.date) -> dt.datetime:
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        minutes = self._rng.uniform(0, 40)
        return dt.datetime.combine(day, _OPEN, LONDON) + dt.timedelta(minutes=minutes)

    def next(self) -> dt.datetime:
        t = self._now + dt.timedelta(seconds=min(self._rng.expovariate(1 / _MEAN_GAP_SECONDS), 7200.0))
        local = t.astimezone(LONDON)
        if local.weekday() >= 5 or local.time() >= _CLOSE:
            t = self._opening(local.date() + dt.timedelta(days=1))
        elif local.time() < _OPEN:
            t = self._opening(local.date())
        self._now = t.replace(microsecond=0)
        return _fixed_offset(self._now)

    def night(self) -> dt.datetime:
        """03:00-03:50 London time on the next day."""
        day = self._now.astimezone(LONDON).date() + dt.timedelta(days=1)
        t = dt.datetime.combine(day, dt.time(3, 0), LONDON) + dt.timedelta(minutes=self._rng.uniform(0, 50))
        self._now = t.replace(microsecond=0)
        return _fixed_offset(self._now)


Template = Callable[[random.Random, dt.datetime], dict[str, Any]]
Scenario = Callable[[random.Random, _Clock], list[_Draft]]
#: A change made to a compliant event to make it a violation.
Change = Callable[[random.Random, dict[str, Any]], None]


class Simulator:
    """Deterministic synthetic traffic over a register: `events(n)` yields n SimulatedEvents.

    The first events cover every scenario once (so any n >= len(scenarios) shows them all); after that
    about `violation_rate` of the events are violations, cycling through the violation scenarios.
    """

    def __init__(
        self,
        agreements: Sequence[Agreement],
        *,
        seed: int = 0,
        violation_rate: float = 0.15,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> None:
        if not 0.0 <= violation_rate < 1.0:
            raise ValueError(f"violation_rate must be in [0, 1), got {violation_rate}")
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware (e.g. tzinfo=ZoneInfo('Europe/London')), got {value}")
        if start is not None and end is not None:
            raise ValueError("give the simulated traffic a start or an end, not both")
        self._by_id = {a.agreement_id: a for a in agreements}
        self._seed = seed
        self._rate = violation_rate
        self._start = start if start is not None else DEFAULT_START
        self._end = end
        self._templates: list[tuple[int, Template]] = [
            (weight, template)
            for weight, template, needs in self._template_table()
            if needs is None or needs in self._by_id
        ]
        if not any(needs in self._by_id for _, _, needs in self._template_table()):
            raise ValueError(
                "none of the sample register's agreements is present, so no compliant traffic can be drawn; "
                "use load_agreements() for the packaged register"
            )
        self._scenarios: dict[str, Scenario] = {
            name: scenario for name, scenario, needs in self._scenario_table() if all(a in self._by_id for a in needs)
        }
        # A multi-event scenario goes last, so that n == len(scenarios) still starts every scenario.
        self.scenarios: tuple[str, ...] = (COMPLIANT, *self._scenarios)

    # --- the stream --------------------------------------------------------------------------------

    def events(self, n: int) -> Iterator[SimulatedEvent]:
        """n events in event-time order (except that night-time events jump ahead); same seed, same events.

        With `end`, the traffic is the same but moved by whole weeks so that its last event is as late
        as it can be without passing `end` (the same seed and end give the same events).
        """
        start = self._start if self._end is None else self.start_ending_by(self._end, n)
        for i, name, draft in self._stream(n, start):
            yield SimulatedEvent(self._validate(draft.event, i), name, draft.expected)

    def start_ending_by(self, end: dt.datetime, n: int) -> dt.datetime:
        """The start, `start` moved by whole weeks, that puts the last of n events as close before `end` as it goes.

        Whole weeks of London wall time keep every event on its weekday and working hour, and the random
        draws the same: the clock's arithmetic is in wall time, so the traffic only moves.
        """
        base = self._start.astimezone(LONDON)
        last = max(
            (when for _, _, d in self._stream(n, base) if isinstance(when := d.event.get("occurred_at"), dt.datetime)),
            default=base,
        )

        def moved(weeks: int) -> dt.datetime:
            return last.astimezone(LONDON) + dt.timedelta(weeks=weeks)

        weeks = (end - last) // dt.timedelta(weeks=1)
        while moved(weeks) > end:  # a change of UTC offset can put it an hour out
            weeks -= 1
        while moved(weeks + 1) <= end:
            weeks += 1
        return base + dt.timedelta(weeks=weeks)

    def _stream(self, n: int, start: dt.datetime) -> Iterator[tuple[int, str, _Draft]]:
        rng = random.Random(self._seed)  # noqa: S311 - synthetic traffic, not security
        clock = _Clock(start, rng)
        front: deque[str] = deque(self.scenarios if self._rate > 0 else (COMPLIANT,))
        cycle: deque[str] = deque()
        pending: deque[tuple[str, _Draft]] = deque()
        violations = 0
        for i in range(n):
            if not pending:
                if front:
                    name = front.popleft()
                elif self._violation_due(rng, i, violations):
                    if not cycle:
                        order = list(self._scenarios)
                        rng.shuffle(order)
                        cycle.extend(order)
                    name = cycle.popleft()
                else:
                    name = COMPLIANT
                pending.extend((name, d) for d in self._drafts(name, rng, clock))
            name, draft = pending.popleft()
            violations += name != COMPLIANT
            yield i, name, draft

    def _violation_due(self, rng: random.Random, i: int, violations: int) -> bool:
        if not self._scenarios or self._rate == 0:
            return False
        # Random, but held within one event of the target share so that any long run converges to it.
        target = self._rate * (i + 1)
        if violations < target - 1:
            return True
        if violations > target + 1:
            return False
        return rng.random() < self._rate

    def _validate(self, data: dict[str, Any], i: int) -> AccessEvent:
        return AccessEvent.model_validate(
            {"schema_version": "1", "event_id": f"sim-{self._seed}-{i:08d}", **data}, strict=False
        )

    def _drafts(self, name: str, rng: random.Random, clock: _Clock) -> list[_Draft]:
        if name == COMPLIANT:
            weights = [w for w, _ in self._templates]
            template = rng.choices([t for _, t in self._templates], weights=weights)[0]
            event = template(rng, clock.next())
            return [_Draft(event, event, frozenset())]
        return self._scenarios[name](rng, clock)

    def _example(self, name: str, seed: int = 0) -> list[_Draft]:
        """The drafts of one scenario, built on their own (tests compare them with their templates)."""
        rng = random.Random(seed)  # noqa: S311 - synthetic traffic, not security
        return self._drafts(name, rng, _Clock(self._start, rng))

    # --- building blocks ---------------------------------------------------------------------------

    def _agreement(self, agreement_id: str) -> Agreement:
        return self._by_id[agreement_id]

    @staticmethod
    def _pupil_ref(rng: random.Random) -> str:
        return f"P{rng.getrandbits(48):012x}"

    @staticmethod
    def _actor(rng: random.Random, org_id: str, role: str, *, users: int = 40) -> dict[str, Any]:
        return {
            "user_id": f"{org_id}:u{rng.randint(1, users):04d}",
            "org_id": org_id,
            "role": role,
            "ip": f"{rng.choice(_GB_IPS)}{rng.randint(2, 254)}",
            "country": "GB",
        }

    def _recipient(self, agreement_id: str) -> dict[str, Any]:
        a = self._agreement(agreement_id)
        recipient: dict[str, Any] = {"org_id": a.recipient_org_id, "org_type": a.recipient_org_type}
        if a.recipient_name is not None:
            recipient["name"] = a.recipient_name
        if a.recipient_ico_registration is not None:
            recipient["ico_registration"] = a.recipient_ico_registration
        if a.recipient_companies_house is not None:
            recipient["companies_house"] = a.recipient_companies_house
        return recipient

    def _fields(self, rng: random.Random, agreement_id: str, wanted: Sequence[str], low: int, high: int) -> list[str]:
        """A random subset of `wanted` that the agreement allows, in the agreement's order."""
        allowed = [f for f in self._agreement(agreement_id).fields_allowed if f in wanted]
        k = min(len(allowed), rng.randint(low, high))
        chosen = set(rng.sample(allowed, k))
        return [f for f in allowed if f in chosen]

    @staticmethod
    def _count(rng: random.Random, low: int, high: int) -> int:
        # A narrow range per recipient (high <= 4 x low): no compliant event is over 5x a recipient's
        # trailing median, which the volume rule would rightly flag.
        return rng.randint(low, high)

    # --- compliant templates -----------------------------------------------------------------------

    def _template_table(self) -> list[tuple[int, Template, str | None]]:
        """(weight, template, agreement it needs) for compliant traffic; weights sum to 100."""
        return [
            (14, self._srs_northmoor, SRS_NORTHMOOR),
            (10, self._srs_kingsbridge, SRS_KINGSBRIDGE),
            (6, self._direct_eastfold, DIRECT_EASTFOLD),
            (12, self._la_extract, LOCAL_AUTHORITY),
            (10, self._charity_query, CHARITY),
            (4, self._commercial_extract, COMMERCIAL),
            (9, self._dwp_match, DWP),
            (2, self._dwp_case, DWP),
            (9, self._home_office_match, HOME_OFFICE),
            (4, self._police_request, POLICE),
            (2, self._hmrc_request, HMRC),
            (3, self._lrs_search, LRS_PROVIDER),
            (15, self._internal_query, None),
        ]

    def _srs_query(self, rng: random.Random, when: dt.datetime, agreement_id: str, purpose: str) -> dict[str, Any]:
        a = self._agreement(agreement_id)
        datasets = ["npd", "hesa"] if "hesa" in a.datasets_allowed and rng.random() < 0.5 else ["npd"]
        return {
            "occurred_at": when,
            "source_system": "ons-srs",
            "action": "query",
            "actor": self._actor(rng, a.recipient_org_id, "accredited_researcher"),
            "recipient": self._recipient(agreement_id),
            "agreement_id": agreement_id,
            "legal_gateway": "DEA2017-s64",
            "purpose": purpose,
            "datasets": datasets,
            "fields": self._fields(rng, agreement_id, _allowed_in_compliant(a), 4, 8),
            "record_count": self._count(rng, 20_000, 75_000),
            "channel": "srs",
        }

    def _srs_northmoor(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        return self._srs_query(rng, when, SRS_NORTHMOOR, "research")

    def _srs_kingsbridge(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        purpose = rng.choice(self._agreement(SRS_KINGSBRIDGE).purposes)
        return self._srs_query(rng, when, SRS_KINGSBRIDGE, purpose)

    def _direct_extract(self, rng: random.Random, when: dt.datetime, agreement_id: str) -> dict[str, Any]:
        """Direct supply of a de-identified research extract over SFTP (s537A, allowed by the agreement)."""
        a = self._agreement(agreement_id)
        wanted = _allowed_in_compliant(a)
        return {
            "occurred_at": when,
            "source_system": "npd-dsh",
            "action": "extract",
            "actor": self._actor(rng, "dfe", "npd_data_officer", users=12),
            "recipient": self._recipient(agreement_id),
            "agreement_id": agreement_id,
            "legal_gateway": "EA1996-s537A",
            "purpose": a.purposes[0],
            "datasets": ["npd"],
            "fields": self._fields(rng, agreement_id, wanted, 4, 8),
            "record_count": self._count(rng, 5_000, 20_000),
            "channel": "sftp",
        }

    def _direct_eastfold(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        return self._direct_extract(rng, when, DIRECT_EASTFOLD)

    def _la_extract(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        a = self._agreement(LOCAL_AUTHORITY)
        fields = self._fields(rng, LOCAL_AUTHORITY, a.fields_allowed, 5, 10)
        if "upn" in a.fields_allowed and "upn" not in fields:
            fields.insert(0, "upn")
        event: dict[str, Any] = {
            "occurred_at": when,
            "source_system": "npd-dsh",
            "action": "extract",
            "actor": self._actor(rng, "dfe", "npd_data_officer", users=12),
            "recipient": self._recipient(LOCAL_AUTHORITY),
            "agreement_id": LOCAL_AUTHORITY,
            "legal_gateway": "EA1996-s537A",
            "purpose": "education_service_delivery",
            "datasets": ["npd"],
            "fields": fields,
            "record_count": self._count(rng, 800, 3_200),
            "channel": "sftp",
            "restricted_record_count": 0,
        }
        if a.onward_recipients_allowed and rng.random() < 0.2:
            event["onward_recipients"] = [a.onward_recipients_allowed[0]]
        return event

    def _charity_query(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        a = self._agreement(CHARITY)
        return {
            "occurred_at": when,
            "source_system": "npd-query-portal",
            "action": "query",
            "actor": self._actor(rng, a.recipient_org_id, "analyst", users=8),
            "recipient": self._recipient(CHARITY),
            "agreement_id": CHARITY,
            "legal_gateway": "EA1996-s537A",
            "purpose": rng.choice(a.purposes),
            "datasets": ["npd"],
            "fields": self._fields(rng, CHARITY, a.fields_allowed, 3, 5),
            "record_count": self._count(rng, 4_000, 15_000),
            "channel": "portal",
            "min_cell_count": rng.randint(10, 60),
        }

    _TIER4 = ("gender", "year_of_birth", "attainment", "enrolment", "school_urn", "school_name", "la_code")

    def _commercial_extract(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        # Tier 4 only: Tier 1/2 pupil-level data to a commercial recipient is flagged whatever the
        # agreement says.
        return {
            "occurred_at": when,
            "source_system": "npd-dsh",
            "action": "extract",
            "actor": self._actor(rng, "dfe", "npd_data_officer", users=12),
            "recipient": self._recipient(COMMERCIAL),
            "agreement_id": COMMERCIAL,
            "legal_gateway": "EA1996-s537A",
            "purpose": "research",
            "datasets": ["npd"],
            "fields": self._fields(rng, COMMERCIAL, self._TIER4, 3, 5),
            "record_count": self._count(rng, 2_000, 8_000),
            "channel": "sftp",
        }

    def _enforcement(
        self,
        rng: random.Random,
        when: dt.datetime,
        agreement_id: str,
        *,
        action: str,
        gateway: str,
        purpose: str,
        fields: Sequence[str],
        case_prefix: str,
        refs: int = 1,
        attestation: bool | None = True,
    ) -> dict[str, Any]:
        """A case-by-case request about one or a few pupils, answered by DfE's NPD team."""
        event: dict[str, Any] = {
            "occurred_at": when,
            "source_system": "dfe-match-api" if action == "match_check" else "npd-dsh",
            "action": action,
            "actor": self._actor(rng, "dfe", "npd_data_officer", users=12),
            "recipient": self._recipient(agreement_id),
            "agreement_id": agreement_id,
            "legal_gateway": gateway,
            "purpose": purpose,
            "datasets": ["npd"],
            "fields": list(fields),
            "record_count": refs,
            "pupil_refs": [self._pupil_ref(rng) for _ in range(refs)],
            "channel": "api" if action == "match_check" else "egress",
            "case_reference": f"{case_prefix}-{when.year}-{rng.randint(1, 99_999):05d}",
        }
        if attestation is not None:
            event["evidence_attestation"] = attestation
        return event

    def _dwp_match(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        return self._enforcement(
            rng,
            when,
            DWP,
            action="match_check",
            gateway="DEA2017-s56",
            purpose="fraud_investigation",
            fields=["match_flag"],
            case_prefix="FES",
            attestation=None,
        )

    def _dwp_case(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        return self._enforcement(
            rng,
            when,
            DWP,
            action="extract",
            gateway="DPA2018-Sch2-p2",
            purpose="fraud_investigation",
            fields=["address", "school_name"],
            case_prefix="FES",
        )

    def _home_office_match(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        fields = self._fields(rng, HOME_OFFICE, ("address", "postcode", "school_name", "school_urn"), 2, 4)
        if "address" not in fields:
            fields.insert(0, "address")
        return self._enforcement(
            rng,
            when,
            HOME_OFFICE,
            action="match_check",
            gateway="DPA2018-Sch2-p4",
            purpose="immigration_enforcement",
            fields=fields,
            case_prefix="HOIE",
        )

    def _police_request(self, rng: random.Random, when: dt.datetime, *, refs: int = 0) -> dict[str, Any]:
        fields = self._fields(rng, POLICE, ("name", "date_of_birth", "address", "school_name", "school_urn"), 2, 4)
        return self._enforcement(
            rng,
            when,
            POLICE,
            action="extract",
            gateway="DPA2018-Sch2-p2",
            purpose="crime_prevention",
            fields=fields,
            case_prefix="NSP-CID",
            refs=refs or rng.choice((1, 1, 1, 2)),
        )

    def _hmrc_request(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        return self._enforcement(
            rng,
            when,
            HMRC,
            action="extract",
            gateway="DPA2018-Sch2-p2",
            purpose="tax_collection",
            fields=["address", "school_name"],
            case_prefix="HMRC-TE",
        )

    def _lrs_search(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        a = self._agreement(LRS_PROVIDER)
        refs = rng.randint(1, 3)
        return {
            "occurred_at": when,
            "source_system": "lrs-portal",
            "action": "search",
            "actor": self._actor(rng, a.recipient_org_id, "learner_registration", users=6),
            "recipient": self._recipient(LRS_PROVIDER),
            "agreement_id": LRS_PROVIDER,
            "legal_gateway": "EA1996-s537A",
            "purpose": "education_service_delivery",
            "datasets": ["lrs"],
            "fields": self._fields(rng, LRS_PROVIDER, a.fields_allowed, 2, 4),
            "record_count": refs,
            "pupil_refs": [self._pupil_ref(rng) for _ in range(refs)],
            "channel": "portal",
        }

    _INTERNAL_FIELDS = (
        "gender",
        "ethnicity_major",
        "fsm",
        "sen_provision",
        "attainment",
        "absence_reason",
        "school_urn",
        "la_code",
    )

    def _internal_query(self, rng: random.Random, when: dt.datetime) -> dict[str, Any]:
        k = rng.randint(3, 6)
        return {
            "occurred_at": when,
            "source_system": "npd-query-portal",
            "action": "query",
            "actor": self._actor(rng, "dfe", "statistician", users=30),
            "recipient": {"org_id": "dfe", "name": "Department for Education", "org_type": "internal"},
            "legal_gateway": "UKGDPR-6-1-e",
            "purpose": rng.choice(("statistics", "statistics", "education_service_delivery")),
            "datasets": ["npd"],
            "fields": sorted(rng.sample(self._INTERNAL_FIELDS, k), key=self._INTERNAL_FIELDS.index),
            "record_count": self._count(rng, 150_000, 600_000),
            "channel": "portal",
        }

    # --- violation scenarios -----------------------------------------------------------------------

    def _scenario_table(self) -> list[tuple[str, Scenario, tuple[str, ...]]]:
        """(name, builder, agreements it needs), grouped by what the violation is about; the multi-event
        scenario last. The order is part of the output: a seed draws scenarios by position."""
        return [
            *self._agreement_scenarios(),
            *self._gateway_scenarios(),
            *self._field_scenarios(),
            *self._handling_scenarios(),
            *self._access_and_output_scenarios(),
        ]

    def _agreement_scenarios(self) -> list[tuple[str, Scenario, tuple[str, ...]]]:
        """No, an unknown, an inactive agreement; a recipient that is not who the agreement names."""
        return [
            (
                "no_agreement_cited",
                _one(self._commercial_extract, "no_agreement", _setter(agreement_id=None)),
                (COMMERCIAL,),
            ),
            (
                "unknown_agreement_id",
                _one(self._commercial_extract, "no_agreement", _setter(agreement_id=UNKNOWN_AGREEMENT)),
                (COMMERCIAL,),
            ),
            ("suspended_agreement", self._not_active(SUSPENDED), (SUSPENDED,)),
            ("expired_agreement", self._not_active(EXPIRED), (EXPIRED,)),
            (
                "recipient_registrations_mismatch",
                _one(self._lrs_search, "recipient_mismatch", _trustopia),
                (LRS_PROVIDER,),
            ),
            (
                "recipient_not_agreement_holder",
                _one(self._srs_northmoor, "recipient_mismatch", self._recipient_as(SRS_KINGSBRIDGE)),
                (SRS_NORTHMOOR, SRS_KINGSBRIDGE),
            ),
        ]

    def _gateway_scenarios(self) -> list[tuple[str, Scenario, tuple[str, ...]]]:
        """Legal gateways and purposes: missing, unknown, not for this recipient, outside the agreement."""
        srs, police = self._srs_northmoor, self._police_request
        return [
            ("missing_legal_gateway", _one(srs, "no_legal_gateway", _setter(legal_gateway=None)), (SRS_NORTHMOOR,)),
            (
                "unknown_gateway_code",
                _one(self._internal_query, "no_legal_gateway", _setter(legal_gateway="UKGDPR-6-1-f")),
                (),
            ),
            (
                "immigration_exemption_used_by_police",
                _one(
                    police,
                    "gateway_not_permitted_for_recipient",
                    _setter(legal_gateway="DPA2018-Sch2-p4", purpose="immigration_enforcement"),
                ),
                (POLICE,),
            ),
            (
                "purpose_not_carried_by_gateway",
                _one(self._internal_query, "purpose_not_permitted_by_gateway", _setter(purpose="research")),
                (),
            ),
            (
                "gateway_outside_agreement",
                _one(srs, "gateway_outside_agreement", _setter(legal_gateway="EA1996-s537A")),
                (SRS_NORTHMOOR,),
            ),
            (
                "purpose_outside_agreement",
                _one(srs, "purpose_outside_agreement", _setter(purpose="statistics")),
                (SRS_NORTHMOOR,),
            ),
        ]

    def _field_scenarios(self) -> list[tuple[str, Scenario, tuple[str, ...]]]:
        """Fields: outside the agreement, prohibited, identifying where the share may not identify."""
        return [
            (
                "field_outside_agreement",
                _one(self._srs_northmoor, "fields_outside_agreement", _add_field("sen_type")),
                (SRS_NORTHMOOR,),
            ),
            (
                "prohibited_field_allowed_by_agreement",
                _one(self._direct_eastfold, "prohibited_field", _add_field("english_proficiency")),
                (DIRECT_EASTFOLD,),
            ),
            (
                "nationality_to_home_office",
                _one(
                    self._home_office_match,
                    ("prohibited_field", "fields_outside_agreement", "match_only_breach"),
                    _add_field("nationality"),
                ),
                (HOME_OFFICE,),
            ),
            (
                "tier2_pupil_data_to_commercial",
                _one(self._commercial_extract, "identifiable_data_not_permitted", _add_field("fsm")),
                (COMMERCIAL,),
            ),
            (
                "identifier_in_deidentified_research",
                _one(self._srs_kingsbridge, "identifiable_data_not_permitted", _add_field("candidate_number")),
                (SRS_KINGSBRIDGE,),
            ),
        ]

    def _handling_scenarios(self) -> list[tuple[str, Scenario, tuple[str, ...]]]:
        """How a share is made: route, justification, match-only, volume, onward sharing, linkage."""
        police, ho = self._police_request, self._home_office_match
        return [
            (
                "srs_only_share_over_sftp",
                _one(self._srs_kingsbridge, "insecure_access_route", _setter(channel="sftp")),
                (SRS_KINGSBRIDGE,),
            ),
            (
                "home_office_without_case_reference",
                _one(ho, "missing_justification", _setter(case_reference=None)),
                (HOME_OFFICE,),
            ),
            (
                "police_without_case_reference",
                _one(police, "missing_justification", _setter(case_reference=None)),
                (POLICE,),
            ),
            (
                "fraud_match_discloses_address",
                _one(self._dwp_match, "match_only_breach", _setter(fields=["match_flag", "address"])),
                (DWP,),
            ),
            (
                "per_event_cap_exceeded",
                _one(self._direct_eastfold, "volume_cap_exceeded", self._over_cap),
                (DIRECT_EASTFOLD,),
            ),
            ("bulk_police_request", _one(police, "bulk_extract", self._bulk), (POLICE,)),
            (
                "onward_sharing_not_allowed",
                _one(self._la_extract, "onward_sharing", _setter(onward_recipients=["tutorfind-ltd"])),
                (LOCAL_AUTHORITY,),
            ),
            (
                "unapproved_linkage",
                _one(self._srs_northmoor, "unapproved_linkage", _setter(datasets=["npd", "hesa"])),
                (SRS_NORTHMOOR,),
            ),
        ]

    def _access_and_output_scenarios(self) -> list[tuple[str, Scenario, tuple[str, ...]]]:
        """Unusual access, governance gaps, restricted records, disclosive outputs, repeated lookups."""
        return [
            ("out_of_hours_access", self._out_of_hours, (SRS_NORTHMOOR,)),
            ("access_from_abroad", _one(self._srs_northmoor, "unusual_access", _abroad), (SRS_NORTHMOOR,)),
            ("governance_gap", self._governance, (GOVERNANCE_GAP,)),
            (
                "restricted_records_in_extract",
                _one(self._la_extract, "restricted_records", _restricted),
                (LOCAL_AUTHORITY,),
            ),
            (
                "disclosive_aggregate",
                _one(self._charity_query, "disclosive_output", _setter(min_cell_count=3)),
                (CHARITY,),
            ),
            ("repeated_pupil_lookup", self._repeated, (POLICE,)),
        ]

    # --- changes and multi-part scenarios that need the register or the simulator's draws ------------

    def _recipient_as(self, agreement_id: str) -> Change:
        def change(rng: random.Random, event: dict[str, Any]) -> None:
            event["recipient"] = self._recipient(agreement_id)
            holder = self._agreement(agreement_id).recipient_org_id
            event["actor"] = self._actor(rng, holder, "accredited_researcher")

        return change

    def _over_cap(self, rng: random.Random, event: dict[str, Any]) -> None:
        cap = self._agreement(DIRECT_EASTFOLD).per_event_record_cap or 100_000
        event["record_count"] = rng.randint(cap + cap // 5, cap * 2)

    def _bulk(self, rng: random.Random, event: dict[str, Any]) -> None:
        event["record_count"] = 200
        event["pupil_refs"] = [self._pupil_ref(rng) for _ in range(200)]

    def _out_of_hours(self, rng: random.Random, clock: _Clock) -> list[_Draft]:
        base = self._srs_northmoor(rng, clock.next())
        event = {**base, "occurred_at": clock.night()}
        return [_Draft(base, event, frozenset({"unusual_access"}))]

    def _governance(self, rng: random.Random, clock: _Clock) -> list[_Draft]:
        # No compliant twin exists: every event under this agreement has the gap. Its template is the
        # same extract under the clean direct-supply agreement.
        when = clock.next()
        base = self._direct_extract(rng, when, DIRECT_EASTFOLD) if DIRECT_EASTFOLD in self._by_id else {}
        event = self._direct_extract(rng, when, GOVERNANCE_GAP)
        allowed = self._agreement(GOVERNANCE_GAP).fields_allowed
        sensitive = [f for f in ("ethnicity", "sen_type", "cin") if f in allowed]
        event["fields"] = [*[f for f in event["fields"] if f not in sensitive], *sensitive]
        return [_Draft(base, event, frozenset({"governance_gap"}))]

    def _not_active(self, agreement_id: str) -> Scenario:
        def build(rng: random.Random, clock: _Clock) -> list[_Draft]:
            when = clock.next()
            base = self._direct_extract(rng, when, DIRECT_EASTFOLD) if DIRECT_EASTFOLD in self._by_id else {}
            event = self._direct_extract(rng, when, agreement_id)
            return [_Draft(base, event, frozenset({"agreement_not_active"}))]

        return build

    def _repeated(self, rng: random.Random, clock: _Clock) -> list[_Draft]:
        # The same pupil looked up five times by one force: lookups 4 and 5 are "more than 3 in 30 days".
        # Each template is the same request about a fresh pupil.
        pupil = self._pupil_ref(rng)
        case = None
        drafts = []
        for k in range(5):
            base = self._police_request(rng, clock.next(), refs=1)
            case = case or base["case_reference"]
            base["case_reference"] = case
            event = {**base, "pupil_refs": [pupil]}
            expected = frozenset({"repeated_pupil_lookup"}) if k >= 3 else frozenset()
            drafts.append(_Draft(base, event, expected))
        return drafts


# --- single-event scenarios: a compliant template and one change to it ---------------------------------


def _one(template: Template, categories: str | tuple[str, ...], change: Change) -> Scenario:
    """A scenario of one event: the template's compliant event with `change` applied."""
    expected = frozenset((categories,) if isinstance(categories, str) else categories)

    def build(rng: random.Random, clock: _Clock) -> list[_Draft]:
        base = template(rng, clock.next())
        event = _deep_copy(base)
        change(rng, event)
        return [_Draft(base, event, expected)]

    return build


def _setter(**changes: Any) -> Change:
    """Set each field to its value; None removes the field."""

    def change(_rng: random.Random, event: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                event.pop(key, None)
            else:
                event[key] = value

    return change


def _add_field(name: str) -> Change:
    def change(_rng: random.Random, event: dict[str, Any]) -> None:
        event["fields"] = [*event["fields"], name]

    return change


def _trustopia(_rng: random.Random, event: dict[str, Any]) -> None:
    # The firm presents itself as the training provider "renamed"; its registrations betray it.
    event["recipient"] = {
        **event["recipient"],
        "name": "Trustopia Ltd",
        "ico_registration": "ZB271190",
        "companies_house": "11907364",
    }


def _abroad(rng: random.Random, event: dict[str, Any]) -> None:
    event["actor"] = {**event["actor"], "country": "US", "ip": f"{_ABROAD_IP}{rng.randint(2, 254)}"}


def _restricted(rng: random.Random, event: dict[str, Any]) -> None:
    event["restricted_record_count"] = rng.randint(1, 6)


def _allowed_in_compliant(agreement: Agreement) -> list[str]:
    return [f for f in agreement.fields_allowed if f not in _FLAGGED_EVEN_IF_ALLOWED]


def _deep_copy(value: Any) -> Any:
    """Copy the nested dicts and lists of a draft (datetimes and strings are immutable)."""
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
