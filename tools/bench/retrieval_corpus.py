"""A retrieval test set with known answers, built on a corpus every Python ships: the language
reference topics in `pydoc_data.topics` (79 documents, ~465,000 characters — what `help("with")`
prints). Each query below was written by hand, in a user's words rather than the manual's, and names
the topic (or topics, where the manual covers a subject twice) that answers it."""

from __future__ import annotations

QUERIES: list[tuple[str, set[str]]] = [
    ("how do I stop a loop early", {"break"}),
    ("skip the rest of the current loop iteration and go to the next one", {"continue"}),
    ("run cleanup code whether or not an exception happened", {"try"}),
    ("make my object usable in a with block", {"context-managers", "with"}),
    ("which values count as false in an if test", {"truth", "booleans"}),
    ("rebind a variable of the enclosing function from a nested function", {"nonlocal"}),
    ("declare that a name inside a function refers to a module level variable", {"global"}),
    ("small anonymous function written as an expression", {"lambda"}),
    ("function that produces its values lazily one at a time", {"yield"}),
    ("suspend a coroutine until something awaitable finishes", {"await", "async"}),
    ("chained comparisons like a < b < c", {"comparisons"}),
    ("integer division and remainder operators", {"binary"}),
    ("move bits to the left or right", {"shifting"}),
    ("how does the exponent operator bind with a unary minus", {"power"}),
    ("raise an exception from another one so they are chained", {"raise"}),
    ("remove a name binding or an element by index", {"del", "typesseq-mutable"}),
    ("methods on strings such as split, strip and join", {"string-methods"}),
    ("format specification for padding, alignment and precision", {"formatstrings"}),
    ("escape sequences in string literals such as a newline", {"strings"}),
    ("numbers with a j suffix", {"imaginary"}),
    ("float literal syntax with an exponent part", {"floating"}),
    ("hexadecimal, octal and binary integer literals", {"integers"}),
    ("look up a key with a default value or insert it if missing", {"typesmapping", "dict"}),
    ("square bracket list display and comprehension syntax", {"lists"}),
    ("taking every second element with extended slicing", {"slicings", "typesseq"}),
    ("intercept attribute lookup when the attribute does not exist", {"attribute-access"}),
    ("objects that compare equal must have the same hash", {"customization"}),
    ("import a sibling module relative to the current package", {"import"}),
    ("what happens when a variable name cannot be resolved", {"naming", "execmodel"}),
    ("step through a program line by line and set breakpoints", {"debugger"}),
    ("which operators bind more tightly than others", {"operator-summary"}),
    ("the object that represents the absence of a value", {"bltin-null-object"}),
    ("the three dots literal", {"bltin-ellipsis-object"}),
    ("attributes every object or class has such as its dictionary and its class", {"specialattrs"}),
    ("implementing descriptors with get and set methods", {"attribute-access"}),
    ("passing keyword arguments and unpacking a dictionary into a call", {"calls"}),
    ("default parameter values are evaluated only once when the function is defined", {"function"}),
    ("defining a class with base classes and decorators", {"class"}),
    ("else clause that runs when a loop ends without break", {"for", "while", "else"}),
    ("in-place addition on a mutable object", {"augassign"}),
    ("test whether a value is contained in a collection", {"comparisons", "in"}),
    ("assign several variables at once with a starred target", {"assignment"}),
    ("functions bound to an instance when accessed through it", {"typesmethods"}),
    ("objects returned by compile that hold bytecode", {"bltin-code-objects"}),
    ("object identity versus equality", {"objects", "comparisons"}),
    ("exec and eval with local variables", {"dynamic-features"}),
    ("words that cannot be used as variable names", {"identifiers", "id-classes"}),
    ("names with two leading underscores are mangled inside a class", {"atom-identifiers", "id-classes"}),
    ("implement addition and reflected addition for my own number class", {"numeric-types"}),
    ("make a container support len and indexing", {"sequence-types"}),
]


def corpus() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(topics)
