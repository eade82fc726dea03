"""Bulk deletion of Microsoft Defender for Endpoint custom indicators.

The library both functions use: settings, credentials, the Defender client,
ID handling, pacing and the deletion engine.
"""
