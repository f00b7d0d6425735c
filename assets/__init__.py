"""emotrack.assets"""
