"""The build entry's launcher: the process that becomes the entry.

The worker starts it as soon as it takes a job, so that its interpreter starts while
the checkout runs, not after it (`procs.Launcher`). It sets PR_SET_PDEATHSIG (SIGKILL
when the worker thread that started it dies: the thread, not the process, since the
local worker's thread in `bass serve` starts the entry and waits for it), then waits
for the entry's directory, argv and environment on a pipe and execs it: the entry's
pid is the launcher's. A wrapper rather than a preexec_fn: Python code between fork
and exec is unsafe in a threaded program such as `bass serve`.

Run as a script (`python -I -S launch.py PARENT STATUS_FD COMMAND_FD`), with nothing
of bass and as little of the standard library as it can: its start is on the way from
a trigger to the build's first command.

COMMAND_FD carries NUL-separated fields: the directory, the number of arguments, the
arguments, then `NAME=VALUE` for each environment variable; EOF with nothing on it
means the entry is not run after all (the checkout failed), and the launcher exits 0.
Why an exec failed goes back on STATUS_FD, closed on exec, as `errno NUL strerror NUL
filename`, so the worker still tells "cannot be run".
"""

import os
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
SIGKILL = 9  # on every Linux architecture; `import signal` would cost an enum import


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def main(parent: int, status_fd: int, command_fd: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    except (ImportError, OSError, AttributeError):  # no prctl: the watchdog and sweeps remain
        pass
    if os.getppid() != parent:  # the worker died before the death signal was set
        os._exit(1)
    command = _read_all(command_fd)
    os.close(command_fd)
    if not command:
        os._exit(0)
    fields = command.split(b"\0")
    cwd, argc = fields[0], int(fields[1])
    argv = fields[2 : 2 + argc]
    env = dict(field.split(b"=", 1) for field in fields[2 + argc :])
    os.set_inheritable(status_fd, False)
    filename = cwd
    try:
        os.chdir(cwd)
        filename = argv[0]
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        os.write(status_fd, b"%d\0%s\0%s" % (e.errno or 0, os.fsencode(e.strerror or ""), filename))
        os._exit(127)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
