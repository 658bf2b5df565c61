"""`--run-as USER`: step processes run as an unprivileged user, who cannot read the
server's data dir (the token file, the database: mode 0700 and 0600).

The server must run as root to switch users; it refuses to start otherwise, or when the
user does not exist or is root itself.
"""

from __future__ import annotations

import os
import pwd
import sys
from dataclasses import dataclass
from typing import Any

# For spawners that cannot switch users themselves (the MCP SDK's): the interpreter starts
# as the server's user, drops to the step user, then becomes argv (same pid).
_LAUNCHER = """import os, sys
uid, gid, groups, *argv = sys.argv[1:]
os.setgroups([int(g) for g in groups.split(",") if g])
os.setgid(int(gid))
os.setuid(int(uid))
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.exit(f"cannot run {argv[0]!r}: {exc.strerror}")
"""


class StepUserError(ValueError):
    """`--run-as` names a user steps cannot run as."""


@dataclass(frozen=True)
class StepUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @classmethod
    def lookup(cls, name: str) -> StepUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise StepUserError(f"--run-as {name}: no such user") from None
        if entry.pw_uid == 0:
            raise StepUserError(f"--run-as {name}: must be an unprivileged user, not root")
        if os.geteuid() != 0:
            raise StepUserError(f"--run-as {name}: the server must run as root to switch users")
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return cls(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)

    def environment(self) -> dict[str, str]:
        """What a process started as this user should find about itself."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def working_directory(self) -> str:
        """Where its processes start when a step names no directory."""
        return self.home if os.path.isdir(self.home) else "/tmp"

    def spawn_options(self) -> dict[str, Any]:
        """Keyword arguments for `subprocess.Popen` (and asyncio's subprocess_exec)."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def wrap(self, argv: list[str]) -> list[str]:
        """argv, started through a launcher that first becomes this user."""
        groups = ",".join(str(g) for g in self.groups)
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER]
        return [*launcher, str(self.uid), str(self.gid), groups, *argv]
