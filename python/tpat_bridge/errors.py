"""The bridge's structured error: a stable code and a one-line reason."""


class BridgeError(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason
