"""Monitoring your own training loop: :class:`Monitor` and the live edge-of-stability events."""
from eoslab.monitor.events import Event, EventDetector, EventRules, detect_events
from eoslab.monitor.monitor import Monitor, MonitorState
from eoslab.monitor.optimizers import RuleOf, rule_by_name, rule_from_optax

__all__ = ["Event", "EventDetector", "EventRules", "detect_events", "Monitor", "MonitorState", "RuleOf", "rule_by_name",
           "rule_from_optax"]
