"""Task names of the SupSup benchmarks (torch-free, so the registry stays fast to import)."""

ROTATION_STEP = 10
PERMUTED_MNIST_TASKS = tuple(f"pmnist_{i:04d}" for i in range(2500))
ROTATED_MNIST_TASKS = tuple(f"rot_{ROTATION_STEP * i:03d}" for i in range(360 // ROTATION_STEP))
SPLIT_MNIST_TASKS = tuple(f"mnist_{2 * i}{2 * i + 1}" for i in range(5))
PERMUTED_DIGITS_TASKS = tuple(f"pdigits_{i:02d}" for i in range(20))
RAND_SPLIT_CIFAR100_TASKS = tuple(f"rand_split_{i:02d}" for i in range(20))
