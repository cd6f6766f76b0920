"""The one exception type whose message is shown to users as is."""


class UserError(Exception):
    """A problem the user can fix; its message is one line: what, where, what to do."""
