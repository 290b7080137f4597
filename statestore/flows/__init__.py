"""The flow model: TaskFlow's logbooks, flow details and atom details."""

from statestore.flows.records import AtomDetail, Failure, FlowDetail, LogBook, RetryAttempt
from statestore.flows.states import AtomKind, AtomState, FlowState, Intention, is_allowed

__all__ = [
    "AtomDetail",
    "AtomKind",
    "AtomState",
    "Failure",
    "FlowDetail",
    "FlowState",
    "Intention",
    "LogBook",
    "RetryAttempt",
    "is_allowed",
]
