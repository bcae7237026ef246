"""Fixed vocabularies of the contract: actions, organisation types, channels, categories, severities.

These are the bounded value sets that metrics labels, alert routing and dashboards rely on; a value
outside them is rejected at the edge rather than invented downstream.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AccessRoute",
    "Action",
    "AgreementStatus",
    "Approver",
    "Category",
    "Channel",
    "DeadLetterReason",
    "OrgType",
    "Severity",
    "Verdict",
]


class Action(StrEnum):
    VIEW = "view"
    SEARCH = "search"
    QUERY = "query"
    EXTRACT = "extract"
    TRANSFER = "transfer"
    MATCH_CHECK = "match_check"


class OrgType(StrEnum):
    INTERNAL = "internal"
    RESEARCH_ACADEMIC = "research_academic"
    RESEARCH_COMMERCIAL = "research_commercial"
    CHARITY = "charity"
    PRESS = "press"
    LOCAL_AUTHORITY = "local_authority"
    SCHOOL = "school"
    OTHER_GOVERNMENT = "other_government"
    POLICE = "police"
    HOME_OFFICE = "home_office"
    DWP = "dwp"
    HMRC = "hmrc"
    COURT = "court"
    COMMERCIAL = "commercial"


class Channel(StrEnum):
    SRS = "srs"
    SFTP = "sftp"
    EGRESS = "egress"
    API = "api"
    EMAIL = "email"
    PORTAL = "portal"
    REMOVABLE_MEDIA = "removable_media"


class AgreementStatus(StrEnum):
    APPROVED = "approved"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    REJECTED = "rejected"


class Approver(StrEnum):
    DSAP = "dsap"
    DMAP = "dmap"
    NPD_TEAM = "npd_team"
    OTHER = "other"


class AccessRoute(StrEnum):
    SRS_ONLY = "srs_only"
    DIRECT_ALLOWED = "direct_allowed"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Verdict(StrEnum):
    COMPLIANT = "compliant"
    VIOLATION = "violation"
    INVALID = "invalid"


class Category(StrEnum):
    """The violation categories (docs/domain.md); dashboards and routing speak these codes."""

    NO_AGREEMENT = "no_agreement"
    AGREEMENT_NOT_ACTIVE = "agreement_not_active"
    RECIPIENT_MISMATCH = "recipient_mismatch"
    NO_LEGAL_GATEWAY = "no_legal_gateway"
    GATEWAY_NOT_PERMITTED_FOR_RECIPIENT = "gateway_not_permitted_for_recipient"
    PURPOSE_NOT_PERMITTED_BY_GATEWAY = "purpose_not_permitted_by_gateway"
    GATEWAY_OUTSIDE_AGREEMENT = "gateway_outside_agreement"
    PURPOSE_OUTSIDE_AGREEMENT = "purpose_outside_agreement"
    FIELDS_OUTSIDE_AGREEMENT = "fields_outside_agreement"
    PROHIBITED_FIELD = "prohibited_field"
    IDENTIFIABLE_DATA_NOT_PERMITTED = "identifiable_data_not_permitted"
    INSECURE_ACCESS_ROUTE = "insecure_access_route"
    MISSING_JUSTIFICATION = "missing_justification"
    MATCH_ONLY_BREACH = "match_only_breach"
    VOLUME_CAP_EXCEEDED = "volume_cap_exceeded"
    BULK_EXTRACT = "bulk_extract"
    REPEATED_PUPIL_LOOKUP = "repeated_pupil_lookup"
    ONWARD_SHARING = "onward_sharing"
    UNAPPROVED_LINKAGE = "unapproved_linkage"
    UNUSUAL_ACCESS = "unusual_access"
    GOVERNANCE_GAP = "governance_gap"
    RESTRICTED_RECORDS = "restricted_records"
    DISCLOSIVE_OUTPUT = "disclosive_output"


class DeadLetterReason(StrEnum):
    """Why a consumed message could not become a decision; one code per failure class."""

    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    SCHEMA_VIOLATION = "schema_violation"
    UNSUPPORTED_VERSION = "unsupported_version"
    FUTURE_TIMESTAMP = "future_timestamp"
    ENGINE_ERROR = "engine_error"
