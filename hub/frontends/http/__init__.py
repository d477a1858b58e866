"""The hub's HTTP front end: transports (Streamable HTTP, SSE), the Host/Origin guard, sessions."""
