import IPNBus
