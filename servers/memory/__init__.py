"""Memory domain: long-term memories, document search (FTS5 + offline embeddings, hybrid ranking) and a knowledge graph compatible with the reference server-memory."""
