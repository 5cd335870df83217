"""Gridflow's benchmark: the real topology beside a bare kombu + psycopg2 pipeline (``make bench``).

Everything it touches is its own: the RabbitMQ vhost ``gridflow_bench``, the PostgreSQL database
``gridflow_bench``, ports 18001-18005 and ``var/bench``, so it can run beside tests and a topology.
"""
