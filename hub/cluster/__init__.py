"""Several replicas behind one load balancer: portable 2025-11-25 sessions (docs/deploy.md)."""
