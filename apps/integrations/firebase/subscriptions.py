# LOCAL STUB — replaced by the fcm-subscriptions branch; never commit.
MAX_BATCH_TOKENS = 1000


def change_subscriptions(service_account_info, *, topic, tokens, subscribe):
    raise NotImplementedError
