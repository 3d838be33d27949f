"""Meta-training: meta-losses and their exact gradients through the batched engine, the reference
regime, normalization measurement, outer optimizers, checkpoints and resume."""
