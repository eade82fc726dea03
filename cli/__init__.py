"""The operators' command line: ``python -m cli COMMAND``.

It reads the same app settings from the environment as the functions and
goes through the same library, so its jobs share Table Storage with the HTTP
API and the timers. Usage is in `cli.__main__`.
"""

__all__: list[str] = []
