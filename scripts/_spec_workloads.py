"""The three workloads of scripts/bench_spec.py, fixed text so every run sends the same prompts.

repeat-heavy  the answer mostly repeats the prompt: a 60-line code file returned with a small
              edit, and a paragraph rewritten with a few words changed
quoting       the answer quotes a document given in the prompt
free chat     open questions: little of the answer is in the prompt

Drafting from the prompt (n-gram lookup) pays off on the first two and should switch itself
off on the third.
"""

from __future__ import annotations

from dataclasses import dataclass

CODE_FILE = '''\
"""Read a CSV of orders and report the revenue per customer."""
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass


@dataclass
class Order:
    customer: str
    item: str
    quantity: int
    unit_price: float

    def total(self) -> float:
        return self.quantity * self.unit_price


def parse_line(row: dict[str, str]) -> Order:
    return Order(
        customer=row["customer"].strip(),
        item=row["item"].strip(),
        quantity=int(row["quantity"]),
        unit_price=float(row["unit_price"]),
    )


def load_orders(path: str) -> list[Order]:
    orders = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            orders.append(parse_line(row))
    return orders


def revenue_by_customer(orders: list[Order]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for order in orders:
        totals[order.customer] += order.total()
    return dict(totals)


def format_report(totals: dict[str, float]) -> str:
    lines = ["customer,revenue"]
    for customer, revenue in sorted(totals.items()):
        lines.append(f"{customer},{revenue:.2f}")
    return "\\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: report.py ORDERS.csv", file=sys.stderr)
        return 2
    orders = load_orders(argv[1])
    print(format_report(revenue_by_customer(orders)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''

PARAGRAPH = (
    "The old harbour town wakes slowly in winter. Fishing boats leave before dawn, their lights moving "
    "across the dark water like a line of small stars, and by the time the bakery opens the quay is "
    "already quiet again. Children walk to the school on the hill, past the chapel and the closed ice "
    "cream kiosk, while their grandparents drink coffee at the café by the lighthouse and argue about "
    "the weather. In the afternoon the boats come back, gulls circling above them, and the fish market "
    "fills with voices, crates and the smell of salt. When the sun goes down early, the town turns on "
    "its lamps one street at a time, and the harbour becomes a mirror of yellow windows."
)

DOCUMENT = """\
Riverside Community Library: visitor guide

Opening hours. The library is open from 9:00 to 19:00 on weekdays and from 10:00 to 16:00 on
Saturdays. It is closed on Sundays and on public holidays. During the summer school break the
library closes one hour earlier on weekdays.

Borrowing. Members may borrow up to twelve items at a time. Books may be kept for three weeks and
films for one week. An item can be renewed twice, online or at the front desk, unless another
member has reserved it. Overdue items cost twenty cents per day, up to a maximum of five euros per
item.

Membership. Membership is free for everyone who lives, works or studies in the district. To join,
bring a photo identity card and a proof of address dated within the last three months. Children
under fourteen need a parent or guardian to sign the form.

Study rooms. Four quiet study rooms on the first floor can be booked for up to three hours a day.
Bookings open seven days in advance. A room that is not claimed within fifteen minutes of the start
of a booking is released to the next person waiting.

Printing and computers. Public computers are available on the ground floor for one hour per session.
Printing costs ten cents per black-and-white page and fifty cents per colour page. Wireless internet
is free; the network name and password are printed on the back of every membership card.
"""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request of a workload: the user message and how many tokens the answer may take."""

    content: str
    max_tokens: int


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    prompts: tuple[Prompt, ...]


WORKLOADS: tuple[Workload, ...] = (
    Workload("repeat-heavy", (
        Prompt("Rename the function parse_line to parse_order everywhere in this file. Reply with the complete "
               "edited file in one code block and nothing else.\n\n```python\n" + CODE_FILE + "```", 768),
        Prompt("Rewrite this paragraph with small changes: write 'harbor' instead of 'harbour' and 'cafe' "
               "instead of 'café', and keep every other word the same. Reply with the paragraph only.\n\n"
               + PARAGRAPH, 256),
    )),
    Workload("quoting", (
        Prompt("Answer from the document below, quoting it word for word. What does it say about borrowing?"
               "\n\n" + DOCUMENT, 192),
        Prompt("Answer from the document below, quoting the sentences you use. How do I become a member, and "
               "how do the study rooms work?\n\n" + DOCUMENT, 192),
    )),
    Workload("free chat", (
        Prompt("Tell me about the history of the bicycle.", 192),
        Prompt("What are some good habits for learning to cook at home?", 192),
    )),
)
