"""Model output → one validated function call: pure text processing, no model and no server.

``parse_call`` finds, repairs (naming every repair) and validates a call; ``validate_call`` checks an
already-parsed one; ``split_thinking`` takes a reasoning model's think block off; ``read_json`` is the
JSON-finding half on its own. Import from here (or from ``memgpt.plugin``); the modules inside are private.
"""

from memgpt.parsing._call import ParsedCall, cut_off, parse_call, split_thinking, validate_call
from memgpt.parsing._json_text import read_json

__all__ = ["ParsedCall", "cut_off", "parse_call", "read_json", "split_thinking", "validate_call"]
