"""Text models shared by the hub and the domain servers (the hub never imports `servers/`)."""
