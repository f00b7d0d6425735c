"""emotrack.models"""
