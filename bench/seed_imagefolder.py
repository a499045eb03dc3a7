"""The reference for bench/end_to_end.py: the plain PyTorch loop ftstudio started from, written the
usual way with torchvision's ImageFolder + DataLoader (decoding every image every epoch).

    python bench/seed_imagefolder.py FOLDER [--epochs 3] [--workers 0]
"""

import argparse

import torch
import torch.nn as nn
import torch.optim as optim
from torchvision import datasets, transforms

ap = argparse.ArgumentParser()
ap.add_argument("folder")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--workers", type=int, default=0)
args = ap.parse_args()

transform = transforms.Compose([transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.13,), (0.31,))])
dataset = datasets.ImageFolder(args.folder, transform=transform)
dataloader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=args.workers)

model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, len(dataset.classes)))
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-3)

for epoch in range(args.epochs):
    for inputs, labels in dataloader:
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: loss {loss.item():.4f}")
torch.save(model.state_dict(), "/tmp/seed_imagefolder_model.pt")
