"""Errors every layer raises: the bridge's structured error (a stable code and a one-line reason)
and the planner's, which `plan` answers carry (schemas/kernel-plan.schema.json error codes)."""


class BridgeError(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PlanError(Exception):
    """A node the planner (or a lowering it calls) cannot plan: `code` is the plan error code."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
