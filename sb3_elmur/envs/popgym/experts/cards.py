"""
History-based experts of the POPGym card games: Autoencode, RepeatPrevious, RepeatFirst, CountRecall and HigherLower.

In all five games the agent's actions never change what it is dealt, so each expert only reads the cards it is shown:
it remembers them (a stack, a window, the first card) or counts them, and answers from that memory. Every one of them
is deterministic and, apart from HigherLower (where chance decides), reaches the maximal return of 1.
"""

from abc import abstractmethod
from collections import deque
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings


class CardExpert(HistoryExpert):
    """
    An expert whose action depends only on the cards it has been shown: the actions it took and the rewards it got
    carry no information it lacks, so :meth:`observe` and :meth:`reset` both just pass the observation to :meth:`see`.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def reset(self, observation: Any) -> None:
        self.start()
        self.see(observation)

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        self.see(observation)

    @abstractmethod
    def start(self) -> None:
        """Forget the previous episode."""

    @abstractmethod
    def see(self, observation: Any) -> None:
        """Take in the next observation of the episode.

        :param observation: The reset observation, or the observation following the last action.
        """


class AutoencodeExpert(CardExpert):
    """
    Autoencode: push every watched suit on a stack, then recite the stack last-in-first-out.

    Observations are the flattened ``(mode, suit)`` pairs of :func:`sb3_elmur.envs.popgym.make_popgym_env` (one-hot
    ``mode`` then one-hot ``suit``; raw tuples are accepted as well). The last watched card already arrives with
    ``mode`` PLAY; the PLAY observations after it are a constant placeholder and are ignored. During the (unscored)
    watch phase the expert echoes the card it was just shown.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    PLAY = 0  # popgym.envs.autoencode.Mode.PLAY

    def start(self) -> None:
        self.stack: list[int] = []
        self.playing = False

    @staticmethod
    def decode(observation: Any) -> tuple[int, int]:
        """The ``(mode, suit)`` of an observation.

        :param observation: A flattened (one-hot, length 6) or raw ``(mode, suit)`` observation.
        """
        flat = np.asarray(observation).reshape(-1)
        if flat.size == 2:
            return int(flat[0]), int(flat[1])
        return int(np.argmax(flat[:2])), int(np.argmax(flat[2:]))

    def see(self, observation: Any) -> None:
        if self.playing:  # the card on top of the stack has just been recited
            if self.stack:
                self.stack.pop()
            return
        mode, suit = self.decode(observation)
        self.stack.append(suit)
        self.playing = mode == self.PLAY

    def act(self) -> int:
        return self.stack[-1] if self.stack else 0


class RepeatFirstExpert(CardExpert):
    """
    RepeatFirst: answer the suit of the reset observation at every step.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def start(self) -> None:
        self.first: int | None = None

    def see(self, observation: Any) -> None:
        if self.first is None:
            self.first = int(observation)

    def act(self) -> int:
        assert self.first is not None, "reset() first"
        return self.first


class RepeatPreviousExpert(CardExpert):
    """
    RepeatPrevious: answer the suit shown ``k - 1`` steps before the newest card, i.e. the oldest card of a window of
    the last ``k`` cards. Before ``k`` cards have been shown the steps are unscored, and the expert answers the first
    card (the oldest one in its not yet full window).

    :param env_id: The POPGym id the expert plays (``k`` = 4 / 32 / 64 for Easy / Medium / Hard).
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        (self.k,) = task_settings(env_id, "k")

    def start(self) -> None:
        self.window: deque[int] = deque(maxlen=self.k)

    def see(self, observation: Any) -> None:
        self.window.append(int(observation))

    def act(self) -> int:
        return self.window[0]


class CardCounter(CardExpert):
    """
    An expert that counts how often it has been shown each card value (the reset card included).

    :param env_id: The POPGym id the expert plays.
    :param num_values: The number of distinct card values.
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, num_values: int, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        self.num_values = num_values

    def start(self) -> None:
        self.counts = np.zeros(self.num_values, dtype=np.int64)

    def see(self, observation: Any) -> None:
        self.counts[self.card(observation)] += 1

    @abstractmethod
    def card(self, observation: Any) -> int:
        """The value of the card an observation shows.

        :param observation: An observation of the env.
        """


class CountRecallExpert(CardCounter):
    """
    CountRecall: count the dealt values (the newest one included) and answer the count of the queried value.

    Observations are ``[value, query]``; the action taken after observation ``t`` is scored against the number of
    cards of value ``query_t`` among the values dealt up to and including ``t``.

    :param env_id: The POPGym id the expert plays (2 colours / 4 suits / 13 ranks for Easy / Medium / Hard).
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        (num_values,) = task_settings(env_id, "num_distinct_cards")
        super().__init__(env_id, num_values, seed)

    def see(self, observation: Any) -> None:
        super().see(observation)
        self.query = int(observation[1])

    def card(self, observation: Any) -> int:
        return int(observation[0])

    def act(self) -> int:
        return int(self.counts[self.query])


class HigherLowerExpert(CardCounter):
    """
    HigherLower: count cards. The cards left in the shoe are ``4 * num_decks`` of each rank minus those shown; guess
    "higher" (action 0) iff at least as many of them rank above the current card as below it, else "lower" (1).
    Since the guesses do not change the order of the cards, this greedy choice is Bayes-optimal.

    :param env_id: The POPGym id the expert plays (1 / 2 / 3 decks for Easy / Medium / Hard).
    :param seed: Unused (the expert is deterministic).
    """

    HIGHER, LOWER = 0, 1

    def __init__(self, env_id: str, seed: int = 0) -> None:
        num_decks, num_ranks = task_settings(env_id, "num_decks", "observation_space.n")
        super().__init__(env_id, num_ranks, seed)
        self.per_rank = 4 * num_decks

    def see(self, observation: Any) -> None:
        super().see(observation)
        self.current = int(observation)

    def card(self, observation: Any) -> int:
        return int(observation)

    def act(self) -> int:
        remaining = self.per_rank - self.counts
        above, below = remaining[self.current + 1 :].sum(), remaining[: self.current].sum()
        return self.HIGHER if above >= below else self.LOWER
