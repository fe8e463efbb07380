import re

from setuptools import find_packages, setup


def version():
    """chatd/__init__.py's __version__, read without importing the package."""
    with open("chatd/__init__.py", encoding="utf-8") as source:
        return re.search(r'__version__ = "([^"]+)"', source.read()).group(1)


setup(
    name="chatd",
    version=version(),
    description="A real-time chat server: bottle on gevent, WebSockets, peewee.",
    packages=find_packages(include=["chatd", "chatd.*", "admin_cli", "admin_cli.*",
                                   "chatd_client", "chatd_client.*"]),
    package_data={"chatd": ["web/*", "web/js/*.js", "web/js/views/*.js"]},
    python_requires=">=3.11",
    install_requires=[line.strip() for line in open("requirements.txt")
                      if line.strip() and not line.startswith("#")],
    # chatd_client alone needs only these (it imports nothing from chatd).
    extras_require={"client": ["requests>=2.31", "websocket-client>=1.7"]},
    entry_points={"console_scripts": [
        "chatd = chatd.server:main",
        "chat-admin = admin_cli.cli:main",
        "chatctl = chatd_client.cli:main",
    ]},
)
