"""How a conversation is written as text (data.chat): dialogue data is made with it and
memgpt-chat talks with it, so the two agree."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Template:
  """A user's turn is user + text + end_of_turn, a reply assistant + text + end_of_turn.
  reply_room > 0: every exchange sits inside one segment (see configs/default.py)."""
  user: str
  assistant: str
  end_of_turn: str
  reply_room: int = 0

  def user_turn(self, text: str) -> str:
    """What the model reads for a user's turn, up to where its reply begins."""
    return f'{self.user}{text}{self.end_of_turn}{self.assistant}'

  def exchange(self, text: str, reply: str) -> str:
    """A user's turn and its reply."""
    return f'{self.user_turn(text)}{reply}{self.end_of_turn}'
