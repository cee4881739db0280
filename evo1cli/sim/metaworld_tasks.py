"""Meta-World task names, difficulty groups and language prompts used by Evo-1.

The groups and prompts are Table 3 of the Evo-1 supplementary material ("Meta-World Tasks Grouped by
Difficulty"): 28 easy, 11 medium, 6 hard and 5 very hard tasks. The table uses bare names, a few of them
different from Meta-World's own (``door`` → ``door-open``, ``nut-assembly`` → ``assembly``,
``nut-disassemble`` → ``disassemble``, ``peg-insertion-side`` → ``peg-insert-side``,
``sweep-into-goal`` → ``sweep-into``); everything here is keyed by the Meta-World v3 environment name
(``metaworld`` 3.1.1, ``metaworld.env_dict.ALL_V3_ENVIRONMENTS``).

`MT50` is in Meta-World's own order, which is also the sub-environment index order of
``gym.make_vec("Meta-World/MT50", ...)``; the authors' prompt file (``tasks.jsonl``) is indexed the same way.

This module does not import ``metaworld``, so task specs can be validated without the simulator installed.
"""

from __future__ import annotations

from evo1cli.errors import Evo1Error

DIFFICULTY_GROUPS: dict[str, tuple[str, ...]] = {
    "easy": (
        "button-press-topdown-v3",
        "button-press-topdown-wall-v3",
        "button-press-v3",
        "button-press-wall-v3",
        "coffee-button-v3",
        "dial-turn-v3",
        "door-close-v3",
        "door-lock-v3",
        "door-unlock-v3",
        "door-open-v3",
        "drawer-close-v3",
        "drawer-open-v3",
        "faucet-close-v3",
        "faucet-open-v3",
        "handle-press-side-v3",
        "handle-press-v3",
        "handle-pull-side-v3",
        "handle-pull-v3",
        "lever-pull-v3",
        "peg-unplug-side-v3",
        "plate-slide-back-side-v3",
        "plate-slide-back-v3",
        "plate-slide-side-v3",
        "plate-slide-v3",
        "reach-v3",
        "reach-wall-v3",
        "window-close-v3",
        "window-open-v3",
    ),
    "medium": (
        "basketball-v3",
        "bin-picking-v3",
        "box-close-v3",
        "coffee-pull-v3",
        "coffee-push-v3",
        "hammer-v3",
        "peg-insert-side-v3",
        "push-wall-v3",
        "soccer-v3",
        "sweep-into-v3",
        "sweep-v3",
    ),
    "hard": (
        "hand-insert-v3",
        "assembly-v3",
        "pick-out-of-hole-v3",
        "pick-place-v3",
        "push-back-v3",
        "push-v3",
    ),
    "very_hard": (
        "disassemble-v3",
        "pick-place-wall-v3",
        "shelf-place-v3",
        "stick-pull-v3",
        "stick-push-v3",
    ),
}
"""Difficulty group → v3 task names, in the order of Table 3."""

PROMPTS: dict[str, str] = {
    # easy
    "button-press-topdown-v3": "Press a button from the top",
    "button-press-topdown-wall-v3": "Bypass a wall and press a button from the top",
    "button-press-v3": "Press a button",
    "button-press-wall-v3": "Bypass a wall and press a button",
    "coffee-button-v3": "Push a button on the coffee machine",
    "dial-turn-v3": "Rotate a dial 180 degrees",
    "door-close-v3": "Close a door with a revolving joint",
    "door-lock-v3": "Lock the door by rotating the lock clockwise",
    "door-unlock-v3": "Unlock the door by rotating the lock counter-clockwise",
    "door-open-v3": "Open a door with a revolving joint",
    "drawer-close-v3": "Push and close a drawer",
    "drawer-open-v3": "Open a drawer",
    "faucet-close-v3": "Rotate the faucet clockwise",
    "faucet-open-v3": "Rotate the faucet counter-clockwise",
    "handle-press-side-v3": "Press a handle down sideways",
    "handle-press-v3": "Press a handle down",
    "handle-pull-side-v3": "Pull a handle up sideways",
    "handle-pull-v3": "Pull a handle up",
    "lever-pull-v3": "Pull a lever down 90 degrees",
    "peg-unplug-side-v3": "Unplug a peg sideways",
    "plate-slide-back-side-v3": "Get a plate from the cabinet sideways",
    "plate-slide-back-v3": "Get a plate from the cabinet",
    "plate-slide-side-v3": "Slide a plate into a cabinet sideways",
    "plate-slide-v3": "Slide a plate into a cabinet",
    "reach-v3": "Reach a goal position",
    "reach-wall-v3": "Bypass a wall and reach a goal",
    "window-close-v3": "Push and close a window",
    "window-open-v3": "Push and open a window",
    # medium
    "basketball-v3": "Dunk the basketball into the basket",
    "bin-picking-v3": "Grasp the puck from one bin and place it into another bin",
    "box-close-v3": "Grasp the cover and close the box with it",
    "coffee-pull-v3": "Pull a mug from a coffee machine",
    "coffee-push-v3": "Push a mug under a coffee machine",
    "hammer-v3": "Hammer a screw on the wall",
    "peg-insert-side-v3": "Insert a peg sideways",
    "push-wall-v3": "Bypass a wall and push a puck to a goal",
    "soccer-v3": "Kick a soccer into the goal",
    "sweep-into-v3": "Sweep a puck into a hole",
    "sweep-v3": "Sweep a puck off the table",
    # hard
    "hand-insert-v3": "Insert the gripper into a hole",
    "assembly-v3": "Pick up a nut and place it onto a peg",
    "pick-out-of-hole-v3": "Pick up a puck from a hole",
    "pick-place-v3": "Pick and place a puck to a goal",
    "push-back-v3": "Push the puck back to a goal",
    "push-v3": "Push the puck to a goal",
    # very hard
    "disassemble-v3": "Pick a nut out of a peg",
    "pick-place-wall-v3": "Pick a puck, bypass a wall and place the puck",
    "shelf-place-v3": "Pick and place a puck onto a shelf",
    "stick-pull-v3": "Grasp a stick and pull a box with the stick",
    "stick-push-v3": "Grasp a stick and push a box using the stick",
}
"""v3 task name → language prompt, verbatim from Table 3."""

MT10: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
"""The MT10 tasks in Meta-World's order (``metaworld.env_dict.MT10_V3``)."""

MT50: tuple[str, ...] = (
    "assembly-v3",
    "basketball-v3",
    "bin-picking-v3",
    "box-close-v3",
    "button-press-topdown-v3",
    "button-press-topdown-wall-v3",
    "button-press-v3",
    "button-press-wall-v3",
    "coffee-button-v3",
    "coffee-pull-v3",
    "coffee-push-v3",
    "dial-turn-v3",
    "disassemble-v3",
    "door-close-v3",
    "door-lock-v3",
    "door-open-v3",
    "door-unlock-v3",
    "hand-insert-v3",
    "drawer-close-v3",
    "drawer-open-v3",
    "faucet-open-v3",
    "faucet-close-v3",
    "hammer-v3",
    "handle-press-side-v3",
    "handle-press-v3",
    "handle-pull-side-v3",
    "handle-pull-v3",
    "lever-pull-v3",
    "pick-place-wall-v3",
    "pick-out-of-hole-v3",
    "pick-place-v3",
    "plate-slide-v3",
    "plate-slide-side-v3",
    "plate-slide-back-v3",
    "plate-slide-back-side-v3",
    "peg-insert-side-v3",
    "peg-unplug-side-v3",
    "soccer-v3",
    "stick-push-v3",
    "stick-pull-v3",
    "push-v3",
    "push-wall-v3",
    "push-back-v3",
    "reach-v3",
    "reach-wall-v3",
    "shelf-place-v3",
    "sweep-into-v3",
    "sweep-v3",
    "window-open-v3",
    "window-close-v3",
)
"""All 50 tasks in Meta-World's order (``metaworld.env_dict.ALL_V3_ENVIRONMENTS`` / ``MT50_V3``)."""

DIFFICULTY: dict[str, str] = {task: group for group, tasks in DIFFICULTY_GROUPS.items() for task in tasks}
"""v3 task name → difficulty group."""

ALIASES: dict[str, str] = {
    "door": "door-open-v3",
    "nut-assembly": "assembly-v3",
    "nut-disassemble": "disassemble-v3",
    "peg-insertion-side": "peg-insert-side-v3",
    "sweep-into-goal": "sweep-into-v3",
}
"""Table 3 names that differ from Meta-World's (matched with or without a ``-v2``/``-v3`` suffix)."""

_BENCHMARKS: dict[str, tuple[str, ...]] = {"mt10": MT10, "mt50": MT50}


def canonical_task(name: str) -> str | None:
    """The v3 task name for `name`, or None if it names no Meta-World task.

    Accepts v3 names (``reach-v3``), v2 names (``reach-v2``), bare names (``reach``) and the Table 3 spellings
    (``door``, ``nut-assembly``, ``sweep-into-goal``, ...); case and surrounding whitespace are ignored.
    """
    key = name.strip().lower()
    for suffix in ("-v3", "-v2"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
            break
    if key in ALIASES:
        return ALIASES[key]
    task = f"{key}-v3"
    return task if task in PROMPTS else None


def resolve_tasks(spec: str) -> list[str]:
    """Expand a task spec into v3 task names, in order and without duplicates.

    `spec` is ``mt10``, ``mt50``, a difficulty group (``easy``, ``medium``, ``hard``, ``very_hard``), a single
    task name, or a comma-separated list of any of these. Task names may be v3, v2, bare or Table 3 spellings
    (see `canonical_task`).

    Raises:
        Evo1Error: for an empty spec or an unknown name (field ``task``).
    """
    out: list[str] = []
    items = [item.strip() for item in spec.split(",")]
    if not any(items):
        raise Evo1Error(
            "empty Meta-World task list; expected 'mt10', 'mt50', a task name or a comma list", field="task"
        )
    for item in items:
        if not item:
            continue
        key = item.lower().replace("-", "_")
        if key in _BENCHMARKS:
            tasks: tuple[str, ...] = _BENCHMARKS[key]
        elif key in DIFFICULTY_GROUPS:
            tasks = DIFFICULTY_GROUPS[key]
        else:
            task = canonical_task(item)
            if task is None:
                raise Evo1Error(
                    f"unknown Meta-World task {item!r}; expected a v3 task name such as 'reach-v3', "
                    f"a difficulty group ({', '.join(DIFFICULTY_GROUPS)}), 'mt10' or 'mt50'",
                    field="task",
                )
            tasks = (task,)
        out.extend(t for t in tasks if t not in out)
    return out
