"""The 48 tasks of POPGym (popgym[navigation] 1.0.7): 16 families x Easy/Medium/Hard, split as in the ELMUR paper."""

import difflib

#: The 16 families, in POPGym's registration order. The first 11 are the paper's *Puzzle* tasks, the last 5
#: (the partially observed control tasks) its *Reactive* tasks.
PUZZLE_FAMILIES = (
    "Autoencode",
    "RepeatPrevious",
    "RepeatFirst",
    "CountRecall",
    "MultiarmedBandit",
    "HigherLower",
    "Battleship",
    "Concentration",
    "MineSweeper",
    "LabyrinthExplore",
    "LabyrinthEscape",
)
REACTIVE_FAMILIES = (
    "PositionOnlyCartPole",
    "VelocityOnlyCartpole",
    "NoisyPositionOnlyCartPole",
    "PositionOnlyPendulum",
    "NoisyPositionOnlyPendulum",
)
FAMILIES = PUZZLE_FAMILIES + REACTIVE_FAMILIES
DIFFICULTIES = ("Easy", "Medium", "Hard")
#: All 48 gymnasium ids, family by family.
POPGYM_IDS = tuple(f"popgym-{family}{difficulty}-v0" for family in FAMILIES for difficulty in DIFFICULTIES)


def parse_task(env_id: str) -> tuple[str, str]:
    """
    Split a POPGym id into (family, difficulty).

    :param env_id: ``popgym-<Family><Easy|Medium|Hard>-v0``.
    :raises ValueError: For an unknown id, listing the closest known ids.
    """
    check_task(env_id)
    name = env_id[len("popgym-") : -len("-v0")]
    for difficulty in DIFFICULTIES:
        if name.endswith(difficulty):
            return name[: -len(difficulty)], difficulty
    raise AssertionError(env_id)  # unreachable: check_task accepted it


def check_task(env_id: str) -> None:
    """
    Raise a ValueError naming the closest matches when ``env_id`` is not one of the 48 POPGym ids.

    :param env_id: The id to check.
    """
    if env_id in POPGYM_IDS:
        return
    close = difflib.get_close_matches(env_id, POPGYM_IDS, n=3, cutoff=0.5)
    known = f"popgym-<{'|'.join(FAMILIES)}><Easy|Medium|Hard>-v0"
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known ids: {known}"
    raise ValueError(f"Unknown POPGym task {env_id!r}{hint}")


def category(env_id: str) -> str:
    """``"puzzle"`` or ``"reactive"``, as the ELMUR paper sums them.

    :param env_id: A POPGym id.
    """
    family, _ = parse_task(env_id)
    return "puzzle" if family in PUZZLE_FAMILIES else "reactive"


def select_tasks(selection: list[str] | tuple[str, ...]) -> list[str]:
    """
    The POPGym ids a selection names, family by family without repeats. Each item is ``"all"``, ``"puzzle"``,
    ``"reactive"``, a difficulty (``"Easy"``), a family (``"MineSweeper"``), a family with a difficulty
    (``"MineSweeperEasy"``) or a full id.

    :param selection: The items.
    :raises ValueError: For an item that names nothing, listing the close matches.
    """
    chosen: set[str] = set()
    for item in selection:
        if item == "all":
            chosen.update(POPGYM_IDS)
        elif item in ("puzzle", "reactive"):
            chosen.update(env_id for env_id in POPGYM_IDS if category(env_id) == item)
        elif item in DIFFICULTIES:
            chosen.update(env_id for env_id in POPGYM_IDS if parse_task(env_id)[1] == item)
        elif item in FAMILIES:
            chosen.update(env_id for env_id in POPGYM_IDS if parse_task(env_id)[0] == item)
        elif f"popgym-{item}-v0" in POPGYM_IDS:
            chosen.add(f"popgym-{item}-v0")
        else:
            names = [
                "all",
                "puzzle",
                "reactive",
                *DIFFICULTIES,
                *FAMILIES,
                *(i[len("popgym-") : -len("-v0")] for i in POPGYM_IDS),
            ]
            close = difflib.get_close_matches(item, [*names, *POPGYM_IDS], n=3, cutoff=0.5)
            if item.startswith("popgym-") or not close:
                check_task(item)  # raises with the close ids
            raise ValueError(f"Unknown POPGym task selection {item!r}; did you mean {', '.join(close)}?")
    return [env_id for env_id in POPGYM_IDS if env_id in chosen]
