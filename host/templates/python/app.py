"""A Switchyard plugin: answers `greeting.requested` with `greeting.sent`.

Build: see README.md; `switchyard test` and `switchyard dev` build it.
"""

import switchyard
from switchyard import Emit, Reject, state


@switchyard.handler
def handle(event):
    if event.type != "greeting.requested":
        return []
    name = event.data.get("name") if isinstance(event.data, dict) else None
    if not isinstance(name, str) or not name:
        raise Reject("`greeting.requested` data needs a `name`")
    count = state.next_in_sequence("greetings")
    switchyard.log(f"greeting #{count} for {name}")
    return [Emit("greeting.sent", {"message": f"Hello, {name}!", "name": name, "count": count})]
