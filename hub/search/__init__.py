"""Tool search: BM25F + MiniLM ranking over the catalog a caller may see.

`hub.search.service.tool_search(hub)` ranks; `hub.search.front` serves search mode's meta-tools;
`hub.search.cli` is `mcp-hub tools search`. Nothing here is imported until used (numpy loads late).
"""
