"""A dialogue model for memgpt-chat: facts told early in a conversation, asked for many
turns later (data.source='dialogue', memgpt_jax/data/synthetic.py).

Run:     memgpt-train --config=configs/chat.py --workdir=runs/chat
Talk:    memgpt-chat --workdir=runs/chat
Compare: python experiments/ablate.py --grid=dialogue (memory on and off, 3 seeds)

Each row is 4 segments of 256 tokens: the user tells 2-4 facts ("my sister's name is
Ada"; the assistant confirms "Noted. Your sister is Ada.") in the first two, small
talk fills the rest, and a question ("what is my sister's name?") comes 0-2 segments
after the facts; the reply says the confirmation again, and its name's first letter
is scored. No exchange crosses a segment boundary (data.chat.reply_room: spaces fill
a segment's end, as memgpt-chat does before a turn that would not fit). Evaluation asks
0, 4, 39 and 390 segments later (about 1K, 10K and 100K tokens of small talk). Turns
are written with data.chat, the template memgpt-chat uses. The pointer's cache is off:
past its segment only the memory can know a name.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config(variants: str = '') -> ml_collections.ConfigDict:
  base = pathlib.Path(__file__).with_name('synthetic.py')
  config = load_config(f'{base}:{variants}' if variants else base)
  config.model.segment_len = 256  # T
  config.model.num_segments = 4  # K
  config.data.source = 'dialogue'
  task = config.data.task
  task.num_facts = 4  # 2 a segment: a question at distance 0 fits after them
  task.context_segments = 2
  # Every token trains: the model writes the turns, and each confirmation of a fact
  # ("Your sister is Ada.") is a look-up to learn from, not only the questions.
  config.data.task_loss = 'all'
  # Every exchange inside one segment, in the data and in memgpt-chat (the longest reply
  # the data holds is 31 tokens).
  config.data.chat.reply_room = 40
  task.train_distances = (0, 1, 2)
  task.eval_distances = (0, 4, 39, 390)
  config.train.num_steps = 3000
  config.train.eval_every = 500
  config.sample.prompt = "User: my sister's name is Ada.\nAssistant: "
  return config
