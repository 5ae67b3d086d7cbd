"""Write fit/router/everyday_chat.csv: everyday chat requests for the router, written by hand.

    python fit/router/everyday_chat.py

Every prompt below was written for wattlens by its developers (no outside data set); see
fit/router/README.md for the labelling rule. Training and evaluation prompts are written
separately (other wording, other topics), so no evaluation prompt is in training.
"""

from __future__ import annotations

import csv
from pathlib import Path

OUT = Path(__file__).resolve().parent / "everyday_chat.csv"

# --- trivially easy: one short, well-known answer, or a transformation of a short given text ----

GREETINGS_TRAIN = [
    "hello",
    "hey there",
    "good morning!",
    "hi, how are you?",
    "thanks a lot",
    "thank you so much!",
    "yo",
    "Hello! Who are you?",
    "good night",
    "hey, what's up?",
    "ok thanks",
    "cheers!",
    "Hi there, nice to meet you.",
    "bye for now",
    "Hey! Can you help me with something?",
    "good evening",
    "thx",
    "Hiya",
    "Morning :)",
    "that's great, thanks!",
]
GREETINGS_EVAL = [
    "hi",
    "Hello there!",
    "hey",
    "Good afternoon.",
    "thanks!",
    "Howdy!",
    "hi again",
    "Thank you, that helped.",
    "see you later",
    "What's your name?",
]

FACTS_TRAIN = [
    "What is the capital of Italy?",
    "What is the capital of Japan?",
    "Who wrote Romeo and Juliet?",
    "How many days are in a week?",
    "What colour is the sky on a clear day?",
    "What is the largest ocean?",
    "How many continents are there?",
    "What is the boiling point of water in Celsius?",
    "Who painted the Mona Lisa?",
    "What language is spoken in Brazil?",
    "What is the chemical symbol for gold?",
    "How many legs does a spider have?",
    "Which planet is known as the Red Planet?",
    "What is the capital of Canada?",
    "What currency is used in Japan?",
    "Who was the first person on the Moon?",
    "How many hours are in a day?",
    "What is the tallest mountain in the world?",
    "What is the freezing point of water in Fahrenheit?",
    "What is the capital of Australia?",
    "How many minutes are in an hour?",
    "What gas do plants absorb from the air?",
    "What is the largest planet in our solar system?",
    "In which country are the pyramids of Giza?",
    "Who discovered penicillin?",
    "What is the capital of Spain?",
    "How many sides does a hexagon have?",
    "What is H2O commonly called?",
    "What is the longest river in Africa?",
    "Which animal is called the king of the jungle?",
    "What year did World War II end?",
    "What is the capital of Egypt?",
    "How many strings does a standard guitar have?",
    "what's the capital of germany",
    "who invented the telephone",
    "how many players are on a soccer team",
]
FACTS_EVAL = [
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "What is the capital of Portugal?",
    "How many months are in a year?",
    "Which planet is closest to the Sun?",
    "What is the chemical symbol for iron?",
    "How many days are in a leap year?",
    "What is the smallest prime number?",
    "What language is spoken in Mexico?",
    "Who painted The Starry Night?",
    "What is the capital of Norway?",
    "how many weeks in a year",
    "What is the largest desert in the world?",
    "What do bees make?",
    "What is the capital city of Kenya?",
]

ARITH_TRAIN = [
    "What is 3+5?",
    "What is 10 minus 4?",
    "What's 6 times 7?",
    "what is 9*9",
    "What is 100 divided by 4?",
    "What is 15 + 27?",
    "Is 7 an even number?",
    "What is half of 50?",
    "What is 12 squared?",
    "How much is 20% of 50?",
    "what is 8+8",
    "What is 1000 - 1?",
    "What is 3 times 4?",
    "Convert 2 hours to minutes.",
    "What's 50 plus 50?",
    "What is the square root of 81?",
]
ARITH_EVAL = [
    "What is 2+2?",
    "What is 7 times 8?",
    "What is 30 divided by 5?",
    "What is 11 + 14?",
    "What is 25% of 200?",
    "what's 5-3",
    "Is 10 an odd number?",
    "How many seconds are in a minute?",
]

REWRITE_TRAIN = [
    "Make this sentence more formal: hey, can u send me the report by tmrw?",
    "Fix the grammar: She don't like apples.",
    "Rewrite this more politely: Give me the file now.",
    "Correct the spelling: I recieved your mesage yesterday.",
    "Make this shorter: I am writing this email in order to let you know that the meeting is moved to Friday.",
    "Rephrase: The weather was very bad so we stayed inside.",
    "Turn this into a question: The shop opens at nine.",
    "Rewrite in the passive voice: The cat chased the mouse.",
    "Make this sound friendlier: Your request has been denied.",
    "Fix the punctuation: its raining again isnt it",
    "Rewrite this in plain English: We will endeavour to facilitate your request expeditiously.",
    "Give me a synonym for happy.",
    "What is the opposite of cold?",
    "Rewrite this sentence in the past tense: I walk to school.",
    "Please capitalise this title: the old man and the sea",
    "Make this tweet more upbeat: Monday again, back to work.",
]
REWRITE_EVAL = [
    "Make this more professional: thx for the help, talk soon",
    "Fix the grammar: He go to work every days.",
    "Rewrite this more concisely: Due to the fact that it was raining, the game was cancelled.",
    "Correct the spelling: definately seperate",
    "Give me a synonym for big.",
    "Rewrite in the future tense: We eat dinner at six.",
    "Make this sentence sound kinder: Your work is not good enough.",
    "What is the opposite of early?",
]

TRANSLATE_TRAIN = [
    "Translate 'good morning' into Spanish.",
    "Translate 'thank you' into German.",
    "How do you say 'cat' in French?",
    "Translate to Italian: Where is the train station?",
    "What does 'merci' mean?",
    "Translate 'I love you' into Portuguese.",
    "Translate into French: The book is on the table.",
    "How do you say 'water' in Japanese?",
    "What does 'hola' mean in English?",
    "Translate 'see you tomorrow' into Spanish.",
    "Translate this into German: My name is Anna.",
    "What is 'bonjour' in English?",
    "Translate 'happy birthday' into Italian.",
    "How do you say 'please' in Dutch?",
]
TRANSLATE_EVAL = [
    "Translate 'hello' into French.",
    "How do you say 'thank you' in Spanish?",
    "Translate into German: I am hungry.",
    "What does 'danke' mean?",
    "Translate 'good night' into Italian.",
    "What is 'gracias' in English?",
    "Translate to Portuguese: The weather is nice today.",
]

SUMMARY_TRAIN = [
    "Summarise in one sentence: The city council met on Tuesday and voted to extend library opening "
    "hours on weekends. The change starts next month and is paid for by the existing budget.",
    "TL;DR: Our team finished the migration to the new server last night. There were no outages, and "
    "all services are running normally. Please report anything unusual.",
    "Summarise this: Sam missed the bus, so he walked to work. He arrived twenty minutes late but "
    "still made it to the morning meeting.",
    "Give me a one-line summary: The recipe needs flour, eggs and milk. Mix them, let the batter rest "
    "for ten minutes, then fry thin pancakes in butter.",
    "Summarise: The museum will be closed on Monday for cleaning. It reopens on Tuesday at 10 am with "
    "free entry for children.",
    "In one sentence, what is this about? Heavy rain is expected across the region this weekend. "
    "Residents are advised to avoid driving through flooded roads.",
    "Shorten this message: Hi all, just a reminder that the office party is on Friday at 5 pm in the "
    "main hall. Food and drinks will be provided. See you there!",
    "Summarise in a few words: The new phone has a bigger screen, a better camera and a battery that "
    "lasts two days, but it costs more than last year's model.",
    "What is the main point? Regular exercise improves sleep, mood and energy. Even a short daily walk helps.",
    "Summarise this email: Dear customer, your order #1234 has shipped and will arrive in 3 to 5 "
    "business days. You can track it on our website.",
    "Summarise: Maria started learning the piano at 30. After two years of practice she played her "
    "first concert for friends.",
    "Give a short summary: The bakery on Main Street is changing hands. The new owners will keep the "
    "name and the staff, and add a small coffee bar.",
]
SUMMARY_EVAL = [
    "Summarise in one sentence: The school trip to the zoo is on Thursday. Children should bring a "
    "packed lunch and a raincoat. The bus leaves at 8:30.",
    "TL;DR: The gym will install new treadmills next week. During the work, the cardio room will be "
    "closed, but the weights area stays open.",
    "Summarise this: Lena lost her keys at the park. A neighbour found them on a bench and brought them "
    "back the same evening.",
    "What is the main point of this? Drinking enough water helps concentration. Most adults need about two litres a day.",
    "Summarise this message: Hi team, the deadline for the quarterly report moves from Monday to "
    "Wednesday. Please update your calendars.",
    "Give a one-line summary: The film follows a young chef who opens a restaurant in Paris and wins over a famous critic.",
]

CODE_TRAIN = [
    "How do I reverse a list in Python?",
    "How do I get the length of a string in JavaScript?",
    "What does 'git status' do?",
    "How do I print hello world in C?",
    "How do I convert a string to an integer in Python?",
    "What is the difference between == and === in JavaScript?",
    "How do I make a new directory in Linux?",
    "How do I comment out a line in Python?",
    "How do I sort a list of numbers in Python?",
    "What does HTML stand for?",
    "How do I check the Python version?",
    "How do I create an empty dictionary in Python?",
    "How can I undo my last git commit?",
    "How do I list files in a folder in the terminal?",
    "What is a for loop?",
    "How do I add an element to an array in JavaScript?",
    "How do I read a file line by line in Python?",
    "How do I round a number to two decimals in Python?",
]
CODE_EVAL = [
    "How do I remove duplicates from a list in Python?",
    "How do I lowercase a string in Python?",
    "What does 'git pull' do?",
    "How do I install a package with pip?",
    "How do I print something in Java?",
    "What does CSS stand for?",
    "How do I delete a file in Linux?",
    "How do I find the maximum of a list in Python?",
]

# --- genuinely hard: many constraints, long careful reasoning or output, or specialist knowledge ---

HARD_TRAIN = [
    "Write a Python implementation of a B-tree with insertion and deletion, and explain the invariants "
    "each operation preserves.",
    "Prove that there are infinitely many primes of the form 4k+3.",
    "Design the database schema and REST API for a multi-tenant invoicing system with partial payments, "
    "refunds and currency conversion. Explain the trade-offs.",
    "My Kubernetes pods restart every few minutes with OOMKilled although the memory limit is 2 GiB and "
    "the app reports 600 MB heap. Walk me through how to diagnose this.",
    "Explain the difference between the Copenhagen and many-worlds interpretations of quantum mechanics, "
    "and what experiments could or could not distinguish them.",
    "Write a lock-free single-producer single-consumer ring buffer in C++ and argue why the memory "
    "orderings you chose are correct.",
    "A farmer has 3 fields. The first yields 20% more than the second, the third yields 15 tonnes less "
    "than the first two together, and all three yield 187 tonnes. How much does each yield? Show your work.",
    "Compare the tax consequences of a sole proprietorship, an LLC and an S corporation for a freelancer "
    "earning $150k in California.",
    "Refactor this 400-line legacy Java class into smaller classes following SOLID principles, keeping "
    "behaviour identical, and write unit tests for the risky parts.",
    "Derive the closed form of the sum of k^3 for k from 1 to n and prove it by induction.",
    "Write a detailed marketing strategy for launching a B2B SaaS product in three European countries "
    "with different languages and regulations.",
    "Explain how the Raft consensus algorithm handles a network partition that isolates the leader, "
    "step by step, including terms and log indices.",
    "Solve the recurrence T(n) = 2T(n/2) + n log n and explain which case of the master theorem applies.",
    "Write a compiler front end for a small expression language: tokenizer, recursive-descent parser and "
    "an AST pretty-printer, in Rust.",
    "Given my symptoms of chest tightness on exertion, a family history of heart disease and high "
    "cholesterol, what are the differential diagnoses a cardiologist would consider and why?",
    "Translate this legal clause into French, preserving its exact legal meaning, and note any terms "
    "that have no direct equivalent in French law: 'The indemnifying party shall hold harmless...'",
    "Analyse the causes of the 2008 financial crisis and assess which regulatory changes since then "
    "would or would not prevent a repeat.",
    "Write a 1,500-word short story in the style of Raymond Carver about two brothers selling their "
    "late father's house, with a twist at the end.",
    "Optimise this SQL query that joins five tables with 50 million rows and runs for 40 seconds; "
    "explain which indexes to add and how to read the query plan.",
    "What is the probability that in a group of 30 people at least three share a birthday? Derive it.",
    "Implement Dijkstra's algorithm with a binary heap in Go, handle disconnected graphs, and analyse its complexity.",
    "Explain the proof idea behind Gödel's first incompleteness theorem to a mathematics undergraduate.",
    "Plan a two-week itinerary through Japan for a family with a wheelchair user, with trains, "
    "accessible hotels and a budget of 6,000 euros.",
    "Debug this: my React app re-renders a list of 10,000 items on every keystroke in an unrelated "
    "input field. Explain the cause and three ways to fix it.",
    "Write a grant proposal outline for a study on microplastics in drinking water, with hypotheses, "
    "methods, sample size justification and a budget.",
    "Explain how CRISPR-Cas9 off-target effects are measured and what the current methods to reduce them are.",
    "Three friends split a bill: Ana pays twice what Ben pays, Ben pays 12 euros more than Carl, and "
    "together they pay 148 euros with a 15% tip included. What did each pay before the tip?",
    "Write a thread-safe LRU cache in Python with a time-to-live per entry and tests for concurrent access.",
    "Evaluate the integral of x^2 e^(-x) from 0 to infinity and explain each step.",
    "Critically compare transformer and state-space models for long-context language modelling, "
    "citing the main architectural differences.",
]
HARD_EVAL = [
    "Prove that the square root of 2 is irrational, then generalise the proof to the square root of any non-square integer.",
    "Write a concurrent web crawler in Go that respects robots.txt, limits requests per host and "
    "deduplicates URLs; explain the design.",
    "Design a fault-tolerant event-sourcing architecture for a bank's payment ledger, including how to "
    "handle replays and schema changes.",
    "A tank is filled by two pipes in 6 and 9 hours and emptied by a third in 12 hours. If all three "
    "are open from the start, how long until it is full? Show every step.",
    "Explain the economic arguments for and against a universal basic income, with evidence from pilot studies.",
    "Write a parser for a subset of JSON in C without any libraries and explain how it handles errors.",
    "My Postgres database has slow writes after adding a GIN index on a JSONB column. Diagnose the "
    "possible causes and propose fixes with their trade-offs.",
    "Derive the formula for the variance of the sample mean and explain when the finite population correction applies.",
    "Write a detailed business plan for a small organic bakery, including a cash-flow forecast for the first year.",
    "Explain how public-key cryptography based on elliptic curves works, including point addition and "
    "why the discrete logarithm problem is hard.",
    "Draft a persuasive 1,000-word op-ed arguing for congestion pricing in a large city, addressing "
    "the three strongest objections.",
    "Implement a red-black tree in Java with insertion and explain each rotation case.",
]

EASY = {
    "greeting": (GREETINGS_TRAIN, GREETINGS_EVAL),
    "fact": (FACTS_TRAIN, FACTS_EVAL),
    "arithmetic": (ARITH_TRAIN, ARITH_EVAL),
    "rewrite": (REWRITE_TRAIN, REWRITE_EVAL),
    "translation": (TRANSLATE_TRAIN, TRANSLATE_EVAL),
    "summary": (SUMMARY_TRAIN, SUMMARY_EVAL),
    "code": (CODE_TRAIN, CODE_EVAL),
}


def rows() -> list[dict[str, str]]:
    out = []
    for category, (train, evals) in EASY.items():
        for split, prompts in (("train", train), ("eval", evals)):
            for p in prompts:
                # Both models answer a trivially easy request correctly: the small one is good enough.
                out.append(_row(category, split, "easy", p, True, True))
    for split, prompts in (("train", HARD_TRAIN), ("eval", HARD_EVAL)):
        for p in prompts:
            # Conservative label: the large model is preferred (the small one is counted as not good enough).
            out.append(_row("hard", split, "hard", p, False, True))
    return out


def _row(category: str, split: str, difficulty: str, prompt: str, weak: bool, strong: bool) -> dict[str, str]:
    return {
        "dataset": "everyday",
        "category": category,
        "split": split,
        "difficulty": difficulty,
        "prompt": prompt,
        "weak_correct": str(weak),
        "strong_correct": str(strong),
    }


def main() -> None:
    data = rows()
    prompts = [r["prompt"].strip().lower() for r in data]
    if len(set(prompts)) != len(prompts):  # a prompt in both splits would leak the evaluation into training
        raise SystemExit("duplicate prompt in everyday_chat")
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows(data)
    n_eval = sum(r["split"] == "eval" for r in data)
    print(f"wrote {OUT}: {len(data)} prompts, {len(data) - n_eval} train, {n_eval} eval")


if __name__ == "__main__":
    main()
