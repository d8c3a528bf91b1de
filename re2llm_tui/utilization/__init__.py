"""Reinforcement Utilization (paper, module 2): session states, rewards, the PPO agent, training."""
