"""Replaces pyinstaller-hooks-contrib's hook: the ISO databases and metadata, without the 20 MB of
translated country names (pycountry/locales), which Crossledger never asks for."""

from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = copy_metadata("pycountry") + collect_data_files("pycountry", excludes=["locales", "locales/**", "tests",
                                                                              "tests/**"])
