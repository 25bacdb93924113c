"""Wizard flows in plain Python: steps, validation, next step, effect on the collected data.

The Qt wizards in app/ui are thin pages over these flows, so every rule here is tested without widgets.
"""
