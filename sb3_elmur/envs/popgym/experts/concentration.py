"""History-based expert of POPGym's Concentration: perfect memory of every card ever shown."""

from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings

UNSEEN = -1


class ConcentrationExpert(HistoryExpert):
    """
    Concentration: remember the value of every card ever shown, and flip known pairs.

    The observation shows the matched cards and the (at most two) cards of the current turn; the expert records the
    value of each card it flips. At the start of a turn it flips one card of a known unmatched pair if there is one
    (the pair of lowest indices), else the lowest-index unseen card. For the second card it flips a known match of
    the first if there is one, else the lowest-index unseen card. It never flips a card that is face up, so turns
    strictly alternate first card / second card, and a pair is matched when the turn's two values are equal.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        (self.num_cards,) = task_settings(env_id, "deck.num_cards")
        self.reset(None)

    def reset(self, observation: Any) -> None:
        #: The value of every card once seen, ``UNSEEN`` before.
        self.known = np.full(self.num_cards, UNSEEN, dtype=np.int64)
        self.matched = np.zeros(self.num_cards, dtype=bool)
        #: The card flipped first in the current turn, ``None`` at the start of a turn.
        self.first: int | None = None

    def _lowest_unseen(self) -> int:
        return int(np.argmax((self.known == UNSEEN) & ~self.matched))

    def _known_match(self, value: int, exclude: int) -> int | None:
        """The lowest-index unmatched card other than ``exclude`` known to hold ``value``, if any."""
        candidates = (self.known == value) & ~self.matched
        candidates[exclude] = False
        return int(np.argmax(candidates)) if candidates.any() else None

    def _known_pair(self) -> int | None:
        """A card of the known unmatched pair whose second card has the lowest index, if any."""
        first_of: dict[int, int] = {}
        for card in np.flatnonzero((self.known != UNSEEN) & ~self.matched).tolist():
            value = int(self.known[card])
            if value in first_of:
                return first_of[value]
            first_of[value] = card
        return None

    def act(self) -> int:
        if self.first is None:
            pair = self._known_pair()
            return self._lowest_unseen() if pair is None else pair
        match = self._known_match(int(self.known[self.first]), exclude=self.first)
        return self._lowest_unseen() if match is None else match

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        card = int(action)
        if self.matched[card]:  # flipping a face-up card ends the turn
            self.first = None
            return
        self.known[card] = int(np.asarray(observation)[card])
        if self.first is None:
            self.first = card
            return
        if card != self.first and self.known[card] == self.known[self.first]:
            self.matched[[card, self.first]] = True
        self.first = None
