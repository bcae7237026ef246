"""The per-event evaluation context that every fact getter reads: `Facts`.

It holds the inputs (event, agreement, catalogue), the views of them that do not depend on the event
(from the engine's CatalogueViews), and the derived values computed at most once per event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast
from zoneinfo import ZoneInfo

from rules._views import (
    BIT_PUPIL,
    NO_FIELDS,
    NO_GATEWAY,
    NO_PURPOSE,
    AgreementView,
    CatalogueViews,
    FieldClasses,
    GatewayView,
    PurposeView,
)
from rules.catalogue import Catalogue, Gateway, Purpose
from schemas.agreement import Agreement
from schemas.event import AccessEvent

__all__ = ["LONDON", "Facts", "event_day", "local_time"]

LONDON = ZoneInfo("Europe/London")


class Facts:
    """The per-event evaluation context: the inputs plus derived facts, each computed at most once.

    Derived values that depend only on a catalogue code, an agreement or a field list (gateway and
    purpose properties, agreement properties, field classes) come from the engine's CatalogueViews
    (rules/_views.py), so most facts are a plain attribute read (`operator.attrgetter`) with no
    per-event work.
    """

    __slots__ = (
        "agreement",
        "agreement_view",
        "cache",
        "catalogue",
        "cited",
        "day",
        "event",
        "field_classes",
        "gateway",
        "gateway_view",
        "local",
        "present",
        "pupil_level",
        "purpose",
        "purpose_view",
        "views",
    )

    def __init__(
        self,
        event: AccessEvent,
        agreement: Agreement | None,
        catalogue: Catalogue,
        views: CatalogueViews | None = None,
    ) -> None:
        """`views`: the catalogue's views, kept by the engine across events (a fresh, empty one if None)."""
        self.event = event
        self.agreement = agreement
        self.catalogue = catalogue
        self.cache: dict[str, Any] = {}
        if views is None or views.catalogue is not catalogue:
            views = CatalogueViews(catalogue)
        self.views: CatalogueViews = views
        gateway_view = views.gateways.get(event.legal_gateway or "", NO_GATEWAY)
        self.gateway_view: GatewayView = gateway_view
        self.gateway: Gateway | None = gateway_view.gateway
        purpose_view = views.purposes.get(event.purpose or "", NO_PURPOSE)
        self.purpose_view: PurposeView = purpose_view
        self.purpose: Purpose | None = purpose_view.purpose
        if agreement is None:
            self.agreement_view: AgreementView = views.no_agreement
        else:  # views.agreement_view, with its hit inlined: this runs for every event
            hit = views.agreements.get(id(agreement))
            self.agreement_view = hit[1] if hit is not None and hit[0] is agreement else views.agreement_view(agreement)
        self.present: bool = agreement is not None
        self.cited: bool = event.agreement_id is not None
        fields = event.fields
        # views.field_classes, with its hit inlined
        classes = views.fields.get(fields) if type(fields) is tuple else None
        if classes is None:
            classes = views.field_classes(fields)
        self.field_classes: FieldClasses = classes
        self.pupil_level: bool = bool(classes.mask & BIT_PUPIL) and event.min_cell_count is None
        self.local: dt.datetime | None = None
        self.day: dt.date | None = None

    @classmethod
    def for_sweep(
        cls, agreement: Agreement, catalogue: Catalogue, now: dt.datetime, views: CatalogueViews | None = None
    ) -> Facts:
        """Facts for an agreement-scoped rule judged at `now`: no event; the day facts use `now`'s date.

        The loader lets such rules name only `agreement.*` (except agreement.cited) and `now.*` facts,
        which never read the event.
        """
        f = cls.__new__(cls)
        if views is None or views.catalogue is not catalogue:
            views = CatalogueViews(catalogue)
        f.event = cast(AccessEvent, None)
        f.agreement = agreement
        f.catalogue = catalogue
        f.cache = {}
        f.views = views
        f.gateway_view = NO_GATEWAY
        f.gateway = None
        f.purpose_view = NO_PURPOSE
        f.purpose = None
        f.agreement_view = views.agreement_view(agreement)
        f.present = True
        f.cited = False
        f.field_classes = NO_FIELDS
        f.pupil_level = False
        f.local = now.astimezone(LONDON)
        f.day = None
        return f


def local_time(f: Facts) -> dt.datetime:
    v = f.local
    if v is None:
        v = f.local = f.event.occurred_at.astimezone(LONDON)
    return v


def event_day(f: Facts) -> dt.date:
    """The Europe/London date of the event (of `now` in a sweep), computed once per Facts.

    Getters write `f.day or event_day(f)` (and `f.local or local_time(f)`): no call once it is set, as a
    date or datetime is never false.
    """
    d = f.day
    if d is None:
        d = f.day = local_time(f).date()
    return d
