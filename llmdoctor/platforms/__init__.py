"""What differs between Linux, WSL, Windows and macOS, as pure functions of facts.

Each module here takes the facts it needs (an environment mapping, an OS name, a mount
table, a path) as arguments and never asks the machine it runs on, so that Windows and
macOS logic is tested on Linux: paths go through ``ntpath`` or ``posixpath`` explicitly.

- :mod:`.paths`: the home directory as ``os.path.expanduser`` computes it (USERPROFILE on
  Windows), is-this-path-under-that-folder and the longest mount prefix, per path flavour;
- :mod:`.mounts`: the mount table (``/proc/self/mounts``, psutil's partitions) with network,
  FUSE and WSL's 9p/drvfs filesystems kept, pseudo filesystems dropped;
- :mod:`.encoding`: text for a console whose code page cannot show every character, and JSON
  written as UTF-8 whatever the locale;
- :mod:`.exitcodes`: a child's exit status named (POSIX signals, Windows NTSTATUS codes);
- :mod:`.pipconfig`: pip's configuration files on Linux, macOS and Windows, in pip's order;
- :mod:`.shell`: which shell the user types fix commands into (the nearest shell above
  llmdoctor, else what the shell variables say).
"""
