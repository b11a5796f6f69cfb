"""WSN, Winning SubNetworks (Kang et al., ICML 2022): weights shared by every task, one learned top-c binary mask per
task over them, and the weights an earlier task's mask uses frozen, so old tasks never change."""
