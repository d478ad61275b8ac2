"""Triplet training (FaceNet, Schroff et al. 2015): a P x K batch sampler, a triplet miner and the
triplet loss, composed as ``triplets = miner(emb, labels); result = loss_fn(emb, labels, triplets)``."""
