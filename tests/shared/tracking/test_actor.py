"""The actor of an operator action survives its trip through JSON."""

import json

import pytest

from shared.tracking import Actor, ActorKind


def test_function_key_actor_names_the_key() -> None:
    actor = Actor.function_key()
    assert actor.kind is ActorKind.FUNCTION_KEY
    assert actor.to_dict() == {
        "kind": "function key",
        "name": "function key",
        "object_id": "",
        "provider": "",
    }


def test_user_actor_round_trips_through_json() -> None:
    actor = Actor(ActorKind.USER, "Ada Lovelace", object_id="0b1c", provider="aad")
    assert Actor.from_dict(json.loads(json.dumps(actor.to_dict()))) == actor


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="robot"):
        Actor.from_dict({"kind": "robot", "name": "x"})
