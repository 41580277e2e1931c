"""A freedesktop notification server for the tests (tests/notify.rs).

Owns org.freedesktop.Notifications on the session bus at $DBUS_SESSION_BUS_ADDRESS, as a
desktop's notification daemon does, and appends each Notify call to the file named by argv[1],
one JSON object a line. Prints "ready" once the name is owned. Needs dbus-next (scripts/test
installs it into the test venv).
"""

import asyncio
import json
import sys

from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, method


class Notifications(ServiceInterface):
    def __init__(self, record):
        super().__init__("org.freedesktop.Notifications")
        self.record = record
        self.last_id = 0

    @method()
    def Notify(  # noqa: N802 (the D-Bus method's name)
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":
        self.last_id += 1
        call = {
            "app_name": app_name,
            "replaces_id": replaces_id,
            "app_icon": app_icon,
            "summary": summary,
            "body": body,
            "actions": actions,
            "hints": {k: v.value for k, v in hints.items()},
            "expire_timeout": expire_timeout,
        }
        with open(self.record, "a", encoding="utf-8") as f:
            f.write(json.dumps(call) + "\n")
        return self.last_id

    @method()
    def GetCapabilities(self) -> "as":  # noqa: N802
        return ["body"]

    @method()
    def GetServerInformation(self) -> "ssss":  # noqa: N802
        return ["credsync-test", "credsync", "1", "1.2"]

    @method()
    def CloseNotification(self, id: "u"):  # noqa: N802, A002
        pass


async def main():
    bus = await MessageBus().connect()
    bus.export("/org/freedesktop/Notifications", Notifications(sys.argv[1]))
    await bus.request_name("org.freedesktop.Notifications")
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


asyncio.run(main())
