"""The scripted 20-message conversation both systems get, word for word.

It mixes small talk with facts worth keeping in core memory, a request to file something in archival
memory, and questions that need recall or archival search, so every kind of memory function is invited.
"""

MESSAGES: tuple[str, ...] = (
    "Hi! My name is Priya and I live in Lisbon.",
    "I work as a marine biologist. I study octopuses.",
    "Please remember that my favourite food is grilled sardines.",
    "What do you know about me so far?",
    "I have a dog called Miso. He is three years old.",
    "Can you save this in your archival memory: my passport number ends in 4471.",
    "What is my dog's name?",
    "I am planning a trip to Japan in April.",
    "Do you have any tips for visiting Kyoto?",
    "Actually, I moved last week: I live in Porto now, not Lisbon.",
    "Where do I live?",
    "My sister Ana is visiting me next weekend.",
    "Search your archival memory: what did I tell you about my passport?",
    "What food do I like?",
    "I just finished reading a book about coral reefs. It was great.",
    "Can you remind me what I said about my trip?",
    "Tell me a short joke about octopuses.",
    "What is the name of my sister?",
    "Please summarize everything you know about me in two sentences.",
    "Thanks, that is all for today. Goodbye!",
)
