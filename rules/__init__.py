"""Gatewatch's pure rule engine: catalogues, rule packs, the condition language, the evaluator.

No Kafka, Faust, HTTP or metrics here; the only I/O is reading the YAML catalogues and packs.
"""

from rules._problems import Problem
from rules.approvals import AgreementEvaluation
from rules.catalogue import Catalogue, load_catalogue
from rules.engine import (
    DEVELOPMENT_PUPIL_KEY,
    Engine,
    Evaluation,
    PupilLookup,
    PupilLookupBatch,
    agreement_alert_id,
    alert_id,
    load_engine,
    validate_pack,
    window_alert_id,
)
from rules.exceptions import ConditionError, GatewatchRulesError, RulePackError
from rules.facts import FACTS, Facts, fact_table
from rules.language import FUNCTIONS, compile_condition, compile_template
from rules.loader import DEFAULT_PACK_DIR, ENGINE_VERSION, Rule, pack_sha256
from rules.offline import OfflineRun
from rules.testing import CaseResult, run_pack_tests
from rules.windows import WindowState

__all__ = [
    "DEFAULT_PACK_DIR",
    "DEVELOPMENT_PUPIL_KEY",
    "ENGINE_VERSION",
    "FACTS",
    "FUNCTIONS",
    "AgreementEvaluation",
    "CaseResult",
    "Catalogue",
    "ConditionError",
    "Engine",
    "Evaluation",
    "Facts",
    "GatewatchRulesError",
    "OfflineRun",
    "Problem",
    "PupilLookup",
    "PupilLookupBatch",
    "Rule",
    "RulePackError",
    "WindowState",
    "agreement_alert_id",
    "alert_id",
    "compile_condition",
    "compile_template",
    "fact_table",
    "load_catalogue",
    "load_engine",
    "pack_sha256",
    "run_pack_tests",
    "validate_pack",
    "window_alert_id",
]
