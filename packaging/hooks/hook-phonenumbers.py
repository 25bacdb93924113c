"""Replaces pyinstaller-hooks-contrib's hook, which ships every phonenumbers module.

Crossledger only parses, checks and formats numbers: it needs the region metadata that
phonenumbers.data and phonenumbers.shortdata import by name (``__import__("region_XX")``), but not
the 20 MB of geocoding, carrier and time-zone tables (which also cost about 45 s of analysis).
"""

from PyInstaller.utils.hooks import collect_submodules

_UNUSED = ("phonenumbers.geodata", "phonenumbers.carrierdata", "phonenumbers.tzdata", "phonenumbers.geocoder",
           "phonenumbers.carrier", "phonenumbers.timezone")

hiddenimports = collect_submodules("phonenumbers.data") + collect_submodules("phonenumbers.shortdata")
excludedimports = list(_UNUSED)
