"""Running a command in a private user namespace, and another architecture's programs.

``userns`` is the helper process (``python -m kiln.isolation.userns``) that makes a user
namespace mapping 65536 ids and, for emulation, a binfmt_misc instance of its own;
``emulation`` says when a program needs qemu-user and wraps a command for it. Both the
image tests (``kiln.sandbox``) and the -dev maintainer-script replay
(``kiln.assemble.maintscripts``) use them, so they sit below both.
"""
