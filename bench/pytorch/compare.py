"""Training throughput of the five models in PyTorch and in Burn, side by side.

Builds the same architectures and optimisers as `shared/` and `trainer/` in PyTorch and times
training steps at batch 128 on the CPU with 2 threads. Right after each model's PyTorch run it
runs the Burn counterpart (the `throughput` example of `trainer`, built once with `cargo build
--release`), so that both meet the machine in the same state, and repeats this `--rounds` times.
It prints the median images/s of both and the median of the rounds' ratios. Nothing in the
build or the tests needs this script.

Usage (from the repository root, in a virtual environment with `pip install torch`):

    python bench/pytorch/compare.py [--steps 20] [--rounds 3] [--threads 2] [--json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

BATCH = 128
WARM_UP = 3


def dcgan_generator(condition_dim=0):
    def block(cin, cout, kernel, stride, padding):
        return [nn.ConvTranspose2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        nn.Unflatten(1, (64 + condition_dim, 1, 1)),
        *block(64 + condition_dim, 256, 3, 1, 0),
        *block(256, 128, 3, 2, 0),
        *block(128, 64, 4, 2, 1),
        nn.ConvTranspose2d(64, 1, 4, 2, 1),
        nn.Tanh(),
    )


def dcgan_discriminator():
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, 2),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2),
        nn.BatchNorm2d(32),
        nn.LeakyReLU(0.2),
        nn.Conv2d(32, 1, 5),
        nn.Flatten(0),
    )


class ConditionalDiscriminator(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(11, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 2),
            nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3),
            nn.Flatten(0),
        )

    def forward(self, images, labels):
        planes = labels[:, :, None, None].expand(-1, -1, 28, 28)
        return self.body(torch.cat([images, planes], 1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(), nn.Flatten())

    def forward(self, x):
        return self.body(x)


def decoder(code_dim):
    return nn.Sequential(
        nn.Linear(code_dim, 32 * 7 * 7),
        nn.ReLU(),
        nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 4, 2, 1),
    )


class Vae(nn.Module):
    def __init__(self, latent_dim=16):
        super().__init__()
        self.encoder = Encoder()
        self.mean = nn.Linear(32 * 7 * 7, latent_dim)
        self.log_variance = nn.Linear(32 * 7 * 7, latent_dim)
        self.decoder = decoder(latent_dim)

    def loss(self, images):
        features = self.encoder(images)
        mean, log_variance = self.mean(features), self.log_variance(features)
        latents = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
        logits = self.decoder(latents)
        reconstruction = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (mean.square() + log_variance.exp() - log_variance - 1).sum(1)
        return (reconstruction + kl).mean()


def classifier():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, 10),
    )


def gan_step_fn(conditional):
    generator = dcgan_generator(10 if conditional else 0)
    discriminator = ConditionalDiscriminator() if conditional else dcgan_discriminator()
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), **adam)
    opt_d = torch.optim.Adam(discriminator.parameters(), **adam)

    def score(images, labels):
        return discriminator(images, labels) if conditional else discriminator(images)

    def step(real, digits):
        labels = F.one_hot(digits, 10).float()
        inputs = [torch.randn(BATCH, 64) for _ in range(2)]
        if conditional:
            inputs = [torch.cat([z, labels], 1) for z in inputs]
        fake = generator(inputs[0]).detach()
        real_logits, fake_logits = score(real, labels), score(fake, labels)
        loss_d = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 0.9)) + \
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        logits = score(generator(inputs[1]), labels)
        loss_g = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item() + loss_g.item()

    return step, True


def autoencoder_step_fn():
    encoder, code, dec = Encoder(), nn.Linear(32 * 7 * 7, 32), decoder(32)
    parameters = list(encoder.parameters()) + list(code.parameters()) + list(dec.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step(images, _digits):
        loss = F.mse_loss(torch.sigmoid(dec(code(encoder(images)))), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, False


def vae_step_fn():
    model = Vae()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(images, _digits):
        loss = model.loss(images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, False


def classifier_step_fn():
    model = classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(images, digits):
        loss = F.cross_entropy(model(images), digits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, False


def measure(step_fn, steps):
    step, symmetric = step_fn
    elapsed = 0.0
    for index in range(WARM_UP + steps):
        images = torch.rand(BATCH, 1, 28, 28)
        if symmetric:
            images = images * 2 - 1
        digits = torch.arange(BATCH) % 10
        started = time.perf_counter()
        step(images, digits)
        if index >= WARM_UP:
            elapsed += time.perf_counter() - started
    return steps * BATCH / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per model (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both frameworks (default 2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    build = ["cargo", "build", "--release", "--quiet", "-p", "trainer", "--example", "throughput", "--message-format", "json"]
    messages = subprocess.run(build, check=True, capture_output=True, text=True).stdout.splitlines()
    artifacts = [json.loads(line) for line in messages if '"compiler-artifact"' in line]
    binary = next(a["executable"] for a in artifacts if a["target"]["name"] == "throughput" and a.get("executable"))
    environment = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    step_fns = {
        "dcgan": lambda: gan_step_fn(False),
        "cgan": lambda: gan_step_fn(True),
        "autoencoder": autoencoder_step_fn,
        "vae": vae_step_fn,
        "classifier": classifier_step_fn,
    }
    runs = {name: [] for name in step_fns}
    for _ in range(args.rounds):
        for name, step_fn in step_fns.items():
            pytorch = measure(step_fn(), args.steps)
            output = subprocess.run([binary, str(args.steps), name], check=True, capture_output=True, text=True, env=environment)
            burn = json.loads(output.stdout.strip().splitlines()[-1])[name]
            runs[name].append((pytorch, burn))

    rows = [
        {
            "model": name,
            "pytorch": statistics.median(p for p, _ in pairs),
            "burn": statistics.median(b for _, b in pairs),
            "ratio": statistics.median(b / p for p, b in pairs),
            "ratios": [round(b / p, 2) for p, b in pairs],
        }
        for name, pairs in runs.items()
    ]
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": args.threads, "rounds": args.rounds, "rows": rows}, indent=2))
        return
    print(f"images/s at batch {BATCH}, {args.threads} threads, PyTorch {torch.__version__}, medians of {args.rounds} rounds")
    print(f"{'model':<12} {'PyTorch':>10} {'Burn':>10} {'Burn/PyTorch':>13}  per round")
    for row in rows:
        ratios = " ".join(f"{ratio:.2f}" for ratio in row["ratios"])
        print(f"{row['model']:<12} {row['pytorch']:>10.0f} {row['burn']:>10.0f} {row['ratio']:>13.2f}  {ratios}")


if __name__ == "__main__":
    sys.exit(main())
