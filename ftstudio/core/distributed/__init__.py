"""Training on several processes with PyTorch's own tools: joining a torchrun job (`torchrun`) and
writing the launch script a cluster scheduler runs (`launch_script`)."""
