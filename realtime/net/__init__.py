"""The network side: HOST:PORT and access rules, client-message handling, the WebSocket
server and the dashboard's HTTP side (one asyncio thread), and ``emotrack listen``."""
