"""The exceptions lighthubert raises. Each carries the one-line message the command prints,
starting with the file or argument it is about.

Catch :class:`Error` for all of them. Arguments that cannot work are also ``ValueError``\\ s.
"""

from __future__ import annotations

__all__ = [
    "Error",
    "CheckpointError",
    "AudioError",
    "SubnetError",
    "DeviceError",
    "InputError",
    "OutputError",
    "UsageError",
]


class Error(Exception):
    """Base class of every lighthubert error."""


class CheckpointError(Error):
    """The checkpoint cannot be read, or is not a LightHuBERT checkpoint this engine runs."""


class AudioError(Error):
    """An audio file (or waveform) cannot be used: unreadable, truncated, too short, not finite."""


class SubnetError(Error, ValueError):
    """The subnet is not one of this checkpoint's search space (the message names the field)."""


class DeviceError(Error):
    """No usable GPU adapter, a device error or lost device, or an input too long for the device."""


class InputError(Error):
    """A corpus input (a file list, a manifest line, a folder) cannot be used."""


class OutputError(Error):
    """The output path cannot be used: it exists, holds another run, or is not writable."""


class UsageError(Error, ValueError):
    """An argument that cannot work (a layer list, a shard, a dtype...)."""
