"""Safe RLHF training core: pure ML (torch, transformers, DeepSpeed), no platform imports.

Stages run as ``python -m training STAGE --config run.json`` (see :mod:`training.stages`). Main
entry points for code built on top (PPO, PPO-Lag):

* models: ``training.models.load_score_model``, ``save_score_model``, ``load_causal_lm``,
  ``load_tokenizer``, ``ScoreModel``;
* data: ``training.data`` datasets, collators, ``plan_epoch``, ``format_prompt``;
* engine: ``training.engine.trainer.Trainer`` and ``Task``, ``CheckpointManager``, backends,
  ``build_deepspeed_config``;
* events: ``training.events.EventWriter``, and ``training.engine.lifecycle.StageRun`` that every
  stage runs inside (started/resumed ... completed | failed); configs: ``training.config``
  (``validate_stage_config`` checks a config without torch);
* toy world: ``training.toyworld`` judges, annotators and generator.
"""
