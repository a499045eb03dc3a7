"""The wizard's words in one place: page titles, the strategy sentences, offline and empty states."""

from __future__ import annotations

INTRO = ("<p><b>Pretraining</b> teaches a model general features on a large, easy-to-get dataset. "
         "<b>Fine-tuning</b> then adapts those weights to your own, smaller task at a lower learning rate, so a few "
         "labelled images go much further. This wizard does both — and trains the same model from scratch on your "
         "data, so you can see whether starting from pretrained weights paid off.</p>")
DEFAULTS_NOTE = ("The defaults need no set-up and no internet: pretrain a small CNN on clean handwritten digits, then "
                 "fine-tune it on 5 labelled images per class of rotated, blurred, noisy digits. It takes about a "
                 "minute on a laptop CPU.")
SEED_EXAMPLE = "Open the seed's example"
SEED_EXAMPLE_TIP = ("The seed document's run: its 784-256-10 network with plain SGD (lr 0.01) pretrained on 28×28 "
                    "MNIST digits 0–4, frozen, and a new head trained for all ten digits (`ftstudio run seed`)")
START_CHOICES = {
    "pretrain": ("Pretrain my own base model", "Train a base model on a dataset first (the default: clean digits)."),
    "torchvision": ("Start from a pretrained torchvision model", "Use ImageNet weights of a torchvision network "
                                                                 "(ResNet, MobileNet…) from this computer."),
    "earlier": ("Start from an earlier run", "Fine-tune a model you trained before (it is listed on the Runs page)."),
}
STRATEGIES = {
    "head": ("Train the head only", "Freeze everything the base model learned and train just a new last layer — "
                                    "fastest, and safest with very few images."),
    "full": ("Train everything, the backbone more gently", "Every layer adapts, the pretrained ones at a lower "
                                                           "learning rate so they are refined rather than "
                                                           "overwritten."),
    "lora": ("LoRA adapters", "Keep the base weights frozen and learn small low-rank corrections to them (plus the "
                              "BatchNorm layers and the head) — few trainable parameters, easy to share."),
    "gradual": ("Gradual unfreezing", "Train the new head alone first, then let the backbone join at a lower "
                                      "learning rate after a number of epochs."),
}
NORMALISATION_TIP = ("Frozen BatchNorm layers normalise with the base model's statistics. When your images differ "
                     "(noise, blur, another camera) those no longer fit and the features can collapse to chance. "
                     "bn auto/adapt re-estimates them on your training images before training (AdaBN); keep leaves "
                     "them; train uses each batch's statistics while training. Input polarity: when your images "
                     "are the negative of the base model's (dark ink on white paper against light strokes on dark), "
                     "auto finds it on your training images and inverts them before the network, in training, "
                     "prediction and export alike.")
SCRATCH = "Also train the same model from scratch for comparison"
SCRATCH_TIP = ("Trains the same architecture from random weights on the same images for the same number of steps, "
               "so the Results page can show whether fine-tuning paid off")
OFFLINE = ("Pretrained weights for {name} are not on this computer. Download them ({url}, checked against "
           "their published hash), choose a local .pth / .safetensors file above — or start from random "
           "initialisation (no pretrained knowledge: the comparison with training from scratch will show little "
           "difference).")
DOWNLOAD_ASK = ("Download the pretrained weights of {name} ({size}) from {url}?\n\nThe file is checked against its "
                "published hash and kept in this computer's cache for later runs; a file that fails the check is "
                "deleted.")
NO_EARLIER_RUNS = ("No earlier run with a checkpoint yet. Go Back and choose “Pretrain my own base model”, or train "
                   "one on the Train page first.")
BACK_STOPS = "Back stops this training (its checkpoint is kept); Next becomes available once it has finished."
CANCEL_RUNNING = "Training is in progress. Stop it (its checkpoint is kept) and close the wizard?"
