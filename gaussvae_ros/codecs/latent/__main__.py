"""``python -m gaussvae_ros.codecs.latent MODEL [--params SET] [--out FILE]``: fit a trained VAE's
latent entropy model, store it in the model file and print the model id
(:func:`~.entropy_fit.main`)."""

from .entropy_fit import main

raise SystemExit(main())
